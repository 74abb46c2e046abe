"""Feature statistics of the real data: computed from images, and kept in an on-disk cache.

FID compares two Gaussians (mean and covariance of extractor features); KID compares two feature
samples (``feature_statistics.FeatureStatistics`` holds both). For the real side both are the
same every time a run is evaluated (same data, split, size and extractor), and computing them
means pushing thousands of images through InceptionV3 on a CPU, so they are computed once and
kept as an ``.npz`` file in a cache folder.

The cache key holds everything that changes the numbers: the data-set spec, the split, the
image size, the extractor's ``cache_id`` (which includes a fingerprint of its weights, so a
different Inception weights file or a re-exported classifier never reuses stale statistics), and
the KID sample's size and seed. The key is stored inside the file and checked on load.

``real_statistics`` is the one call for a split of an ``hvitgan_tf.data`` source, shared by
``hvitgan-tf evaluate`` and the validation FID of training. This module imports TensorFlow only
inside ``compute_feature_statistics``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from hvitgan_tf.errors import UserError
from hvitgan_tf.metrics.feature_statistics import DEFAULT_MAX_SAMPLES, FeatureStatistics

log = logging.getLogger(__name__)


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
    from hvitgan_tf.metrics.feature_extractors import iter_features
    from hvitgan_tf.metrics.feature_metrics import (FrechetInceptionDistance,
                                                    KernelInceptionDistance)

    moments = FrechetInceptionDistance(extractor.feature_dim)
    sample = KernelInceptionDistance(extractor.feature_dim, max_samples=max_samples, seed=seed)
    for features in iter_features(extractor, batches, batch_size=batch_size):
        moments.update_state(real_features=features)
        sample.update_state(real_features=features)
    stats = moments.real_statistics()
    return dataclasses.replace(stats, sample=sample.real_sample(), metadata=metadata or {})


# -- the cache --------------------------------------------------------------------------------

def default_cache_dir() -> str:
    """Folder of cached real-data feature statistics.

    ``$HVITGAN_TF_CACHE/reference-statistics`` if that variable is set, else
    ``$XDG_CACHE_HOME/hvitgan-tf/reference-statistics`` (``~/.cache`` when unset).
    """
    root = os.environ.get("HVITGAN_TF_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        root = os.path.join(base, "hvitgan-tf")
    return os.path.join(root, "reference-statistics")


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


# -- a split of a data source -----------------------------------------------------------------

def split_identity(source, split: str) -> str:
    """A string that changes when the images of ``source``'s ``split`` change, for cache keys.

    The spec alone is not enough for sources we split ourselves (the split rule and seed decide
    which images are in it) or for folders whose content changed; the split rule and the
    per-class counts catch those cases (not an edit that keeps every count, which would need
    hashing every file).
    """
    counts = ",".join(str(c) for c in source.class_counts(split))
    return f"{source.spec} | {source.split_rule} | {split} counts {counts}"


def real_statistics(source, split: str, image_size: int, extractor, *,
                    cache_dir: Optional[str] = None, batch_size: int = 64,
                    max_samples: int = DEFAULT_MAX_SAMPLES, refresh: bool = False):
    """``FeatureStatistics`` of ``split`` at ``image_size`` (cached when ``cache_dir`` is set)."""
    if source.num_examples(split) < 2:
        raise UserError(f"the {split} split of {source.spec} has "
                        f"{source.num_examples(split)} image(s); FID needs at least 2")

    def batches():
        return source.batches(split, int(image_size), batch_size)

    if cache_dir is None:
        return compute_feature_statistics(extractor, batches(), max_samples=max_samples,
                                          batch_size=batch_size)
    return cached_reference_statistics(
        cache_dir, dataset=split_identity(source, split), split=split,
        image_size=int(image_size), extractor=extractor, batches=batches,
        max_samples=max_samples, batch_size=batch_size, refresh=refresh)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-")[:40] or "x"
