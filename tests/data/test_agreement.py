import numpy as np
import pytest

from iadbench.data.agreement import binary_counts, fleiss_kappa

# Fleiss (1971) worked example as reproduced on Wikipedia ("Fleiss' kappa"): 10 items, 14 raters, 5 classes.
WIKIPEDIA = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])  # fmt: skip


def test_reference_example():
    assert fleiss_kappa(WIKIPEDIA) == pytest.approx(0.20993, abs=5e-5)


def test_perfect_chance_and_undefined():
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert fleiss_kappa(np.array([[3, 0], [3, 0]])) is None  # one class only: chance agreement is 1
    assert fleiss_kappa(np.array([[1, 0], [0, 1]])) is None  # no item with two raters
    # two raters who always disagree on a balanced yes/no question: below chance
    assert fleiss_kappa(binary_counts([1, 1, 1, 1], [2, 2, 2, 2])) == pytest.approx(-1.0)


def test_items_with_different_rater_counts():
    """By hand, with P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1)) per item (its own rater count n_i):
    P = (1, 1/3, 1), mean 7/9; p_j = (3/8, 5/8), P_e = 9/64 + 25/64 = 17/32;
    κ = (7/9 − 17/32) / (1 − 17/32) = 71/135."""
    counts = np.array([[2, 0], [1, 2], [0, 3]])
    assert fleiss_kappa(counts) == pytest.approx(71 / 135, abs=1e-12)
    # an item rated once carries no agreement: dropping it changes nothing
    assert fleiss_kappa(np.vstack([counts, [[1, 0]]])) == pytest.approx(71 / 135, abs=1e-12)
