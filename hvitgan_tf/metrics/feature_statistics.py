"""``FeatureStatistics``: the mean, covariance and KID sample of a set of feature vectors.

FID compares two Gaussians (mean and covariance of extractor features); KID compares two feature
samples. This class holds both for one side, computes FID between two of them, and is stored as
an ``.npz`` file (``reference_statistics`` keeps the real data's in a cache). NumPy only: the
streaming Keras metrics (``feature_metrics``) build these, and this module needs nothing of them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from hvitgan_tf.fileio import atomic_path
from hvitgan_tf.metrics.distances import frechet_distance

#: Default size of the feature sample kept for KID (rows per side; 5000 x 2048 float32 = 41 MB).
DEFAULT_MAX_SAMPLES = 5000

#: Version of the file layout below; a change invalidates old cache files.
_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class FeatureStatistics:
    """Mean and covariance (float64) of ``count`` feature vectors, plus an optional sample.

    ``sample`` is a uniformly random subset of the feature vectors (float32 ``[m, d]``) for KID,
    which needs the vectors themselves rather than their moments. ``metadata`` is free-form JSON
    data (e.g. the cache key) stored alongside.
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: int
    sample: Optional[np.ndarray] = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        covariance = np.asarray(self.covariance, dtype=np.float64)
        d = mean.shape[0]
        if covariance.shape != (d, d):
            raise ValueError(f"covariance must be [{d}, {d}] to match the mean, got "
                             f"{covariance.shape}")
        if int(self.count) < 2:
            raise ValueError(f"statistics need at least 2 feature vectors, got {self.count}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", covariance)
        object.__setattr__(self, "count", int(self.count))
        if self.sample is not None:
            sample = np.asarray(self.sample, dtype=np.float32)
            if sample.ndim != 2 or sample.shape[1] != d:
                raise ValueError(f"sample must be [m, {d}], got {sample.shape}")
            object.__setattr__(self, "sample", sample)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_features(cls, features, sample_size: Optional[int] = None, seed: int = 0,
                      metadata: Optional[Mapping[str, Any]] = None) -> "FeatureStatistics":
        """Statistics of an in-memory ``[N, d]`` array (float64 two-pass covariance).

        ``sample_size`` rows (all when None) are kept, drawn without replacement with ``seed``.
        """
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features must be [N, d], got shape {features.shape}")
        as64 = features.astype(np.float64)
        mean = as64.mean(axis=0)
        centered = as64 - mean
        covariance = centered.T @ centered / max(len(as64) - 1, 1)
        if sample_size is None or sample_size >= len(features):
            sample = features
        else:
            rows = np.random.default_rng(seed).choice(len(features), sample_size, replace=False)
            sample = features[rows]
        return cls(mean, covariance, len(features), sample, metadata or {})

    def frechet_distance(self, other: "FeatureStatistics") -> float:
        """FID between these statistics and ``other``'s."""
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance)

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Write an ``.npz`` file atomically (a crash never leaves a truncated cache entry)."""
        path = os.fspath(path)
        arrays = {
            "format_version": np.array(_FORMAT_VERSION),
            "mean": self.mean,
            "covariance": self.covariance,
            "count": np.array(self.count, dtype=np.int64),
            "metadata": np.array(json.dumps(self.metadata, sort_keys=True)),
        }
        if self.sample is not None:
            arrays["sample"] = self.sample
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a name
                np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "FeatureStatistics":
        """Read a file written by ``save``; a damaged or foreign file raises ``ValueError``."""
        try:
            with np.load(os.fspath(path), allow_pickle=False) as data:
                version = int(data["format_version"])
                if version != _FORMAT_VERSION:
                    raise ValueError(f"format version {version}, expected {_FORMAT_VERSION}")
                return cls(
                    mean=data["mean"],
                    covariance=data["covariance"],
                    count=int(data["count"]),
                    sample=data["sample"] if "sample" in data.files else None,
                    metadata=json.loads(str(data["metadata"])),
                )
        except (OSError, KeyError, ValueError, EOFError) as error:
            raise ValueError(f"{path} is not a readable feature-statistics file: {error}") \
                from None
