"""Real-data feature statistics: computing, saving, and the keyed on-disk cache."""
import os

import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.metrics.feature_extractors import FeatureExtractor
from hvitgan_tf.metrics.feature_metrics import FrechetInceptionDistance
from hvitgan_tf.metrics.feature_statistics import FeatureStatistics
from hvitgan_tf.metrics.reference_statistics import (cached_reference_statistics,
                                                     compute_feature_statistics,
                                                     reference_cache_path)


class ProjectionExtractor(FeatureExtractor):
    """A stand-in network: a fixed random projection of the pixels (fast, deterministic)."""

    def __init__(self, dim=5, seed=0, batch_size=16):
        self.name = "projection"
        self.feature_dim = dim
        self.cache_id = f"projection:{dim}:{seed}"
        self.batch_size = batch_size
        self.matrix = np.random.default_rng(seed).normal(size=(8 * 8 * 3, dim))
        self.calls = 0

    def _extract(self, images):
        self.calls += 1
        return images.reshape(len(images), -1) @ self.matrix


@pytest.fixture
def images():
    return np.random.default_rng(1).uniform(-1, 1, (300, 8, 8, 3)).astype(np.float32)


def test_computed_statistics_equal_the_in_memory_ones(images):
    extractor = ProjectionExtractor()
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(300))).batch(64)
    stats = compute_feature_statistics(extractor, dataset, max_samples=100, seed=3)
    features = extractor(images)
    direct = FeatureStatistics.from_features(features)
    np.testing.assert_allclose(stats.mean, direct.mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.covariance, direct.covariance, rtol=1e-6, atol=1e-9)
    assert stats.count == 300 and stats.sample.shape == (100, 5)
    # The sample consists of distinct rows of the feature matrix.
    as_rows = {tuple(np.round(r, 3)) for r in features.astype(np.float32)}
    assert all(tuple(np.round(r, 3)) in as_rows for r in stats.sample)
    assert len({tuple(r) for r in stats.sample}) == 100


def test_save_and_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    stats = FeatureStatistics.from_features(rng.normal(size=(50, 4)), sample_size=20,
                                            metadata={"key": {"split": "test"}})
    path = stats.save(tmp_path / "stats.npz")
    loaded = FeatureStatistics.load(path)
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    np.testing.assert_array_equal(loaded.sample, stats.sample)
    assert loaded.count == 50 and loaded.metadata == {"key": {"split": "test"}}
    assert loaded.frechet_distance(stats) == pytest.approx(0.0, abs=1e-12)
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="not a readable feature-statistics file"):
        FeatureStatistics.load(tmp_path / "junk.npz")
    assert sorted(os.listdir(tmp_path)) == ["junk.npz", "stats.npz"]


def test_cache_computes_once_and_reuses(images, tmp_path):
    extractor = ProjectionExtractor()
    loads = []

    def load_images():
        loads.append(1)
        return images

    kwargs = dict(dataset="demo", split="validation", image_size=8, max_samples=64)
    first = cached_reference_statistics(tmp_path, extractor=extractor, batches=load_images,
                                        **kwargs)
    calls = extractor.calls
    second = cached_reference_statistics(tmp_path, extractor=extractor, batches=load_images,
                                         **kwargs)
    assert len(loads) == 1 and extractor.calls == calls  # no data read, no network run
    np.testing.assert_array_equal(first.covariance, second.covariance)
    np.testing.assert_array_equal(first.sample, second.sample)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("demo_validation_8px_projection-")
    # The cached statistics serve as the reference of the FID metric.
    metric = FrechetInceptionDistance(5, reference=second)
    metric.update_state(fake_features=extractor(images))
    assert float(metric.result()) == pytest.approx(0.0, abs=1e-9)


def test_cache_key_separates_what_changes_the_numbers(images, tmp_path):
    base = dict(dataset="demo", split="validation", image_size=8, extractor="projection:5:0",
                max_samples=64, seed=0)
    paths = {reference_cache_path(tmp_path, base)}
    for change in (dict(dataset="folder:/data"), dict(split="test"), dict(image_size=16),
                   dict(extractor="projection:5:1"), dict(max_samples=32), dict(seed=1)):
        paths.add(reference_cache_path(tmp_path, {**base, **change}))
    assert len(paths) == 7
    # Different weights behind the same extractor name give a different file.
    kwargs = dict(dataset="demo", split="validation", image_size=8, batches=images)
    cached_reference_statistics(tmp_path, extractor=ProjectionExtractor(seed=0), **kwargs)
    other = cached_reference_statistics(tmp_path, extractor=ProjectionExtractor(seed=1),
                                        **kwargs)
    assert len(os.listdir(tmp_path)) == 2
    assert other.metadata["key"]["extractor"] == "projection:5:1"


def test_damaged_or_foreign_cache_files_are_recomputed(images, tmp_path):
    extractor = ProjectionExtractor()
    kwargs = dict(dataset="demo", split="test", image_size=8, extractor=extractor,
                  batches=images)
    good = cached_reference_statistics(tmp_path, **kwargs)
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    with open(path, "wb") as handle:
        handle.write(b"\x00" * 10)  # e.g. a disk-full truncation from an older tool
    again = cached_reference_statistics(tmp_path, **kwargs)
    np.testing.assert_allclose(again.mean, good.mean)
    # A file under the right name but with another key inside is not trusted.
    FeatureStatistics(np.zeros(5), np.eye(5), 10, metadata={"key": {"dataset": "x"}}).save(path)
    third = cached_reference_statistics(tmp_path, **kwargs)
    np.testing.assert_allclose(third.mean, good.mean)
    assert FeatureStatistics.load(path).metadata["key"]["dataset"] == "demo"


def test_fid_kid_against_reference_in_one_call(images):
    from hvitgan_tf.metrics.feature_metrics import fid_kid_against_reference

    extractor = ProjectionExtractor()
    reference = compute_feature_statistics(extractor, images[:150], max_samples=150)
    same = fid_kid_against_reference(extractor, reference, images[150:], num_subsets=10,
                                     subset_size=100)
    shifted = fid_kid_against_reference(extractor, reference, images[150:] * 0.5 + 0.3,
                                        num_subsets=10, subset_size=100)
    assert same["num_fake"] == 150
    assert shifted["fid"] > 3 * same["fid"] > 0
    assert shifted["kid"] > 3 * shifted["kid_std"]
    assert abs(same["kid"]) < shifted["kid"] / 10
    no_sample = FeatureStatistics(reference.mean, reference.covariance, reference.count)
    result = fid_kid_against_reference(extractor, no_sample, images[150:])
    assert np.isnan(result["kid"]) and result["fid"] == pytest.approx(same["fid"])
    with pytest.raises(ValueError, match="another extractor"):
        fid_kid_against_reference(ProjectionExtractor(dim=3), reference, images)
