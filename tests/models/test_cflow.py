import math

import pytest
import torch

from iadbench.errors import IadbenchError
from iadbench.models.cflow import TrainingReferenceMap


def _layers(values_a, values_b):
    # two layers of log-likelihoods, one image each: 2x2 and 1x1 cells
    return [torch.tensor(values_a), torch.tensor(values_b)], [2, 1], [2, 1]


def test_map_is_layers_minus_the_sum_of_likelihoods_relative_to_training_maxima():
    generator = TrainingReferenceMap(["a", "b"])
    generator.calibrating = True
    generator(*_layers([-3.0, -1.0, -2.0, -5.0], [-2.0]))  # training images: maxima -1 and -2
    generator(*_layers([-4.0, -4.0, -4.0, -4.0], [-3.0]))
    generator.calibrating = False
    assert generator.reference.tolist() == [-1.0, -2.0]
    test = _layers([-1.0, -2.0, -3.0, -4.0], [-2.0])
    got = generator(*test, image_size=(2, 2))  # layer b's single cell covers the whole 2x2 image
    for (row, col), ll_a in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [-1.0, -2.0, -3.0, -4.0], strict=True):
        expected = 2 - (math.exp(ll_a - -1.0) + math.exp(-2.0 - -2.0))  # L - sum_l exp(ll_l - m_l)
        assert got[0, row, col].item() == pytest.approx(expected, rel=1e-6)


def test_an_images_map_does_not_depend_on_the_others_in_its_batch():
    generator = TrainingReferenceMap(["a"])
    generator.reference.fill_(0.0)
    alone = generator([torch.tensor([-1.0, -2.0, -3.0, -4.0])], [2], [2])
    together = generator([torch.tensor([-1.0, -2.0, -3.0, -4.0, 5.0, 6.0, 7.0, 8.0])], [2], [2])
    assert torch.equal(alone[0], together[0])


def test_a_cell_trained_before_the_fix_is_refused_with_what_to_do():
    generator = TrainingReferenceMap(["a"])  # reference NaN: never calibrated (no buffer in an old state dict)
    with pytest.raises(IadbenchError, match="training log-likelihood maxima .* are missing .* run its train stage"):
        generator([torch.tensor([-1.0])], [1], [1])
