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
    counts = np.array([[2, 0], [1, 2], [0, 3]])
    assert -1 <= fleiss_kappa(counts) <= 1
