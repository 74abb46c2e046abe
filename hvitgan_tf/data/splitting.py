"""Seeded, stratified index arithmetic (NumPy only): train/validation/test splits for sources
that come without splits, and the training subset of docs/method.md §8 (``--fraction`` /
``--limit``).

Both work on a label vector and return sorted positions into it, so a split is a pure function
of ``(labels, fractions, seed)`` and the stored order of the examples never depends on the seed.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from hvitgan_tf.data.forms import SPLIT_NAMES, DataError


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int
                     ) -> Dict[str, np.ndarray]:
    """Split positions ``0..len(labels)-1`` into train/validation/test, class by class.

    Within each class the positions are permuted with ``seed``; ``round(n_c * f_validation)`` go
    to validation, ``round(n_c * f_test)`` to test and the rest to train (so a class with very
    few examples keeps them all in train). Returns sorted int64 positions per split name.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLIT_NAMES}
    _, f_val, f_test = fractions
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = len(members)
        n_val = int(np.floor(n * f_val + 0.5))
        n_test = min(int(np.floor(n * f_test + 0.5)), n - n_val)
        parts["validation"].append(members[:n_val])
        parts["test"].append(members[n_val:n_val + n_test])
        parts["train"].append(members[n_val + n_test:])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) if chunks
            else np.zeros([0], np.int64) for name, chunks in parts.items()}


def proportional_quotas(class_counts: Sequence[int], total: int) -> np.ndarray:
    """How many examples of each class a stratified draw of ``total`` takes.

    Largest-remainder rounding of ``total * n_c / N`` (ties to the lower class index), then every
    class that has examples gets at least one (taken from the class with the largest quota), so
    a small class never vanishes from a ``--limit`` subset.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    population = int(counts.sum())
    if not 0 < total <= population:
        raise ValueError(f"total must be in [1, {population}], got {total}")
    exact = total * counts / population
    quotas = np.floor(exact).astype(np.int64)
    remainder_order = np.lexsort((np.arange(len(counts)), -(exact - quotas)))
    quotas[remainder_order[:total - int(quotas.sum())]] += 1
    for label in np.flatnonzero((quotas == 0) & (counts > 0)):
        donor = int(np.argmax(quotas))
        if quotas[donor] <= 1:
            break  # fewer examples requested than classes: nothing left to give
        quotas[donor] -= 1
        quotas[label] += 1
    return quotas


def subset_size(population: int, *, fraction=None, limit=None) -> int:
    """Size of the training subset: ``limit``, or ``round(fraction * population)`` (at least 1),
    or the whole population."""
    if limit is not None:
        return int(limit)
    if fraction is not None:
        return max(1, int(np.floor(float(fraction) * population + 0.5)))
    return int(population)


def check_limit(limit, population: int, num_classes: int, what: str) -> None:
    """``--limit`` must fit the split and leave room for one example per class."""
    if limit is None:
        return
    if int(limit) > population:
        raise DataError(f"--limit {limit} is larger than the {what} ({population} examples)")
    if int(limit) < num_classes:
        raise DataError(f"--limit {limit} is smaller than the number of classes "
                        f"({num_classes}); a stratified subset needs one example per class")


def stratified_subset(labels: np.ndarray, num_classes: int, *, fraction=None, limit=None,
                      seed: int = 0, what: str = "training split") -> np.ndarray:
    """Sorted positions of a stratified random subset of ``labels`` (docs/method.md §8).

    ``limit`` examples, or ``round(fraction * N)``; per-class quotas from
    ``proportional_quotas``; which examples of a class are drawn depends only on ``seed``.
    """
    labels = np.asarray(labels)
    population = len(labels)
    if limit is None and fraction is None:
        return np.arange(population, dtype=np.int64)
    check_limit(limit, population, num_classes, what)
    total = subset_size(population, fraction=fraction, limit=limit)
    counts = np.bincount(labels, minlength=num_classes)
    quotas = proportional_quotas(counts, total)
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == label), size=int(quota), replace=False)
              for label, quota in enumerate(quotas) if quota]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
