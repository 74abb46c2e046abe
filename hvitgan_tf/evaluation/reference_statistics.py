"""Feature statistics of a data set, and an on-disk cache of them for the real data.

FID compares two Gaussians (mean and covariance of extractor features); KID compares two feature
samples. For the real side both are the same every time a run is evaluated (same data, split,
size and extractor), and computing them means pushing thousands of images through InceptionV3 on
a CPU, so they are computed once and kept as an ``.npz`` file in a cache folder.

The cache key holds everything that changes the numbers: the data-set spec, the split, the
image size, the extractor's ``cache_id`` (which includes a fingerprint of its weights, so a
different Inception weights file or a re-exported classifier never reuses stale statistics), and
the KID sample's size and seed. The key is stored inside the file and checked on load.

This module imports TensorFlow only inside ``compute_feature_statistics``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from hvitgan_tf.evaluation.distances import frechet_distance
from hvitgan_tf.fileio import atomic_path

log = logging.getLogger(__name__)

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


# -- computing statistics from images ---------------------------------------------------------

def compute_feature_statistics(extractor, batches, max_samples: int = DEFAULT_MAX_SAMPLES,
                               seed: int = 0, batch_size: int = 64,
                               metadata: Optional[Mapping[str, Any]] = None
                               ) -> FeatureStatistics:
    """Stream ``batches`` of images through ``extractor`` into FID moments and a KID sample.

    Uses the same streaming accumulators as the Keras metrics (``feature_metrics``), so cached
    statistics and metric state agree exactly. ``batches``: anything ``iter_image_batches``
    accepts (an array, a ``tf.data.Dataset`` of images or ``(images, labels)``, an iterable).
    """
    from hvitgan_tf.evaluation.feature_extractors import iter_features
    from hvitgan_tf.evaluation.feature_metrics import (FrechetInceptionDistance,
                                                       KernelInceptionDistance)

    moments = FrechetInceptionDistance(extractor.feature_dim)
    sample = KernelInceptionDistance(extractor.feature_dim, max_samples=max_samples, seed=seed)
    for features in iter_features(extractor, batches, batch_size=batch_size):
        moments.update_state(real_features=features)
        sample.update_state(real_features=features)
    stats = moments.real_statistics()
    return dataclasses.replace(stats, sample=sample.real_sample(), metadata=metadata or {})


# -- the cache --------------------------------------------------------------------------------

def reference_cache_key(dataset: str, split: str, image_size: int, extractor_id: str,
                        max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0) -> dict:
    """Everything that determines the real-data statistics, as a JSON-able dict."""
    return {
        "dataset": str(dataset),
        "split": str(split),
        "image_size": int(image_size),
        "extractor": str(extractor_id),
        "max_samples": int(max_samples),
        "seed": int(seed),
    }


def reference_cache_path(cache_dir: Union[str, os.PathLike], key: Mapping[str, Any]) -> str:
    """``<cache_dir>/<readable part>-<hash of the full key>.npz``.

    The readable part helps a person find the file; the hash makes the name unique (dataset
    specs contain slashes and globs, extractor ids contain paths).
    """
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:16]
    readable = "_".join([
        _slug(key["dataset"]), _slug(key["split"]), f"{key['image_size']}px",
        _slug(str(key["extractor"]).split(":")[0]),
    ])
    return os.path.join(os.fspath(cache_dir), f"{readable}-{digest}.npz")


def cached_reference_statistics(cache_dir: Union[str, os.PathLike], *, dataset: str,
                                split: str, image_size: int, extractor,
                                batches: Union[Callable[[], Iterable], Iterable],
                                max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0,
                                batch_size: int = 64, refresh: bool = False
                                ) -> FeatureStatistics:
    """Real-data statistics from the cache, computing and storing them on a miss.

    ``batches`` may be a zero-argument callable returning the image batches: it is only called
    on a cache miss, so a hit never touches the data. A cache file that is unreadable or whose
    stored key differs is recomputed and replaced. ``refresh=True`` always recomputes.
    """
    key = reference_cache_key(dataset, split, image_size, extractor.cache_id, max_samples, seed)
    path = reference_cache_path(cache_dir, key)
    if not refresh and os.path.exists(path):
        try:
            stats = FeatureStatistics.load(path)
        except ValueError as error:
            log.warning("ignoring damaged statistics cache %s (%s); recomputing", path, error)
        else:
            if stats.metadata.get("key") == key:
                log.info("real-data feature statistics from cache %s", path)
                return stats
            log.warning("statistics cache %s holds a different key; recomputing", path)
    if callable(batches):
        batches = batches()
    stats = compute_feature_statistics(extractor, batches, max_samples=max_samples, seed=seed,
                                       batch_size=batch_size, metadata={"key": key})
    os.makedirs(os.fspath(cache_dir), exist_ok=True)
    stats.save(path)
    log.info("wrote real-data feature statistics (%d images) to %s", stats.count, path)
    return stats


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")[:40] or "x"
