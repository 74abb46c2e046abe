"""Seeded stratified splits and training subsets (docs/method.md §8)."""
import numpy as np
import pytest

from hvitgan_tf.data.forms import DataError
from hvitgan_tf.data.splitting import (proportional_quotas, stratified_split, stratified_subset,
                                       subset_size)


def _labels():
    # 3 classes with uneven sizes: 500, 300, 7.
    return np.repeat(np.arange(3), [500, 300, 7])[np.random.default_rng(5).permutation(807)]


def test_split_is_a_stratified_partition():
    labels = _labels()
    parts = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    everything = np.concatenate(list(parts.values()))
    assert sorted(everything.tolist()) == list(range(len(labels)))
    for positions in parts.values():
        assert np.all(np.diff(positions) > 0)  # sorted, so stored order is kept
    for label, size in enumerate([500, 300, 7]):
        val = np.sum(labels[parts["validation"]] == label)
        test = np.sum(labels[parts["test"]] == label)
        assert abs(val - 0.1 * size) <= 0.5 and abs(test - 0.1 * size) <= 0.5


def test_split_depends_on_the_seed_only():
    labels = _labels()
    first, again = (stratified_split(labels, (0.8, 0.1, 0.1), seed=3) for _ in range(2))
    other = stratified_split(labels, (0.8, 0.1, 0.1), seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], other["test"])


def test_subset_is_reproducible_and_seed_dependent():
    labels = _labels()
    a = stratified_subset(labels, 3, limit=100, seed=1)
    b = stratified_subset(labels, 3, limit=100, seed=1)
    c = stratified_subset(labels, 3, limit=100, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(a) == len(c) == 100 and len(np.unique(a)) == 100


@pytest.mark.parametrize("limit", [3, 10, 101, 400, 807])
def test_subset_keeps_class_proportions_within_rounding(limit):
    labels = _labels()
    chosen = stratified_subset(labels, 3, limit=limit, seed=0)
    counts = np.bincount(labels[chosen], minlength=3)
    expected = limit * np.array([500, 300, 7]) / 807
    assert counts.sum() == limit
    assert np.all(counts >= 1)  # even the 7-example class survives
    # Largest-remainder rounding is within 1; the minimum-one rule may move one more.
    assert np.all(np.abs(counts - expected) <= 2), (counts, expected)


def test_fraction_subset_size():
    labels = _labels()
    chosen = stratified_subset(labels, 3, fraction=0.25, seed=0)
    assert len(chosen) == subset_size(807, fraction=0.25) == round(0.25 * 807)
    assert len(stratified_subset(labels, 3, seed=0)) == 807  # no subset asked


def test_limit_must_fit_the_split_and_the_classes():
    labels = _labels()
    with pytest.raises(DataError, match="larger than"):
        stratified_subset(labels, 3, limit=808, seed=0)
    with pytest.raises(DataError, match="number of classes"):
        stratified_subset(labels, 3, limit=2, seed=0)


def test_quotas_sum_to_the_total():
    for total in range(1, 60):
        quotas = proportional_quotas([50, 30, 1, 0], total)
        assert quotas.sum() == total
        assert quotas[3] == 0
