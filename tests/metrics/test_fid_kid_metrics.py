"""Streaming FID/KID Keras metrics: equal to the one-shot formulas, batch-order independent."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.metrics.distances import frechet_distance, kernel_inception_distance
from hvitgan_tf.metrics.feature_metrics import (FrechetInceptionDistance,
                                                   KernelInceptionDistance, stream_keys)
from hvitgan_tf.metrics.feature_statistics import FeatureStatistics


def batches(array, size):
    return [array[i:i + size] for i in range(0, len(array), size)]


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(0)
    d = 6
    a = rng.normal(size=(d, d))
    real = rng.multivariate_normal(np.zeros(d), a @ a.T / d + np.eye(d), size=40_000)
    fake = rng.multivariate_normal(np.full(d, 0.5), np.eye(d) * 2.0, size=40_000)
    exact = frechet_distance(np.zeros(d), a @ a.T / d + np.eye(d), np.full(d, 0.5),
                             np.eye(d) * 2.0)
    return real, fake, exact


def test_fid_metric_streaming_equals_one_shot_and_the_closed_form(gaussians):
    real, fake, exact = gaussians
    one_shot = frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                                fake.mean(0), np.cov(fake, rowvar=False))
    metric = FrechetInceptionDistance(feature_dim=6)
    # Uneven batch sizes, real and fake in different chunkings.
    for chunk in batches(real, 997):
        metric.update_state(real_features=chunk)
    for chunk in batches(fake, 3001):
        metric.update_state(fake_features=chunk.astype(np.float32).astype(np.float64))
    streamed = float(metric.result())
    assert streamed == pytest.approx(one_shot, rel=1e-6)
    assert streamed == pytest.approx(exact, rel=0.03)  # two samples of 40k from known laws
    np.testing.assert_allclose(metric.real_statistics().covariance, np.cov(real, rowvar=False),
                               rtol=1e-10, atol=1e-12)
    assert metric.real_statistics().count == len(real)


def test_fid_metric_is_zero_for_identical_sets_and_keeps_precision_far_from_the_origin():
    """Features with a mean 1e6 times their spread: the shifted sums keep the covariance
    accurate where the textbook E[xxᵀ] − μμᵀ loses about 12 of its 16 digits."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 5)) * 1e-3 + 1000.0
    metric = FrechetInceptionDistance(5)
    for chunk in batches(x, 512):
        metric.update_state(real_features=chunk, fake_features=chunk)
    assert float(metric.result()) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(metric.real_statistics().covariance, np.cov(x, rowvar=False),
                               rtol=1e-8)


def test_fid_metric_updates_inside_tf_function(gaussians):
    real, fake, _ = gaussians
    metric = FrechetInceptionDistance(6)

    @tf.function
    def step(r, f):
        metric.update_state(real_features=r, fake_features=f)
        return metric.result()

    for r, f in zip(batches(real[:4000], 1000), batches(fake[:4000], 1000)):
        traced = step(tf.constant(r), tf.constant(f))
    expected = frechet_distance(real[:4000].mean(0), np.cov(real[:4000], rowvar=False),
                                fake[:4000].mean(0), np.cov(fake[:4000], rowvar=False))
    assert float(traced) == pytest.approx(expected, rel=1e-9)


def test_fid_reference_is_kept_across_reset_and_matches_streaming(gaussians):
    real, fake, _ = gaussians
    reference = FeatureStatistics.from_features(real)
    metric = FrechetInceptionDistance(6, reference=reference)
    metric.update_state(fake_features=fake)
    first = float(metric.result())
    plain = FrechetInceptionDistance(6)
    plain.update_state(real_features=real, fake_features=fake)
    assert first == pytest.approx(float(plain.result()), rel=1e-9)
    metric.reset_state()
    with pytest.raises(ValueError, match="at least 2 fake"):
        metric.result()
    metric.update_state(fake_features=fake)
    assert float(metric.result()) == pytest.approx(first, rel=1e-12)
    with pytest.raises(ValueError, match="fixed reference"):
        metric.update_state(real_features=real[:10])
    metric.clear_reference()
    metric.update_state(real_features=real[:10])
    assert metric.real_statistics().count == 10


def test_fid_metric_validates_and_serialises():
    metric = FrechetInceptionDistance(3, name="val_fid")
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        metric.update_state(real_features=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="real_features, fake_features"):
        metric.update_state()
    clone = FrechetInceptionDistance.from_config(metric.get_config())
    assert (clone.name, clone.feature_dim) == ("val_fid", 3)


def test_kid_metric_streaming_equals_one_shot_when_all_rows_fit(gaussians):
    real, fake, _ = gaussians
    real, fake = real[:600], fake[:500]
    metric = KernelInceptionDistance(6, num_subsets=20, subset_size=200, max_samples=1000)
    for chunk in batches(real, 128):
        metric.update_state(real_features=chunk)
    for chunk in batches(fake, 96):
        metric.update_state(fake_features=chunk)
    result = metric.result()
    # All rows kept; their order in the sample is the key order, which only permutes rows.
    kept = metric.real_sample()
    assert kept.shape == (600, 6)
    assert sorted(map(tuple, kept)) == sorted(map(tuple, real.astype(np.float32)))
    expected = kernel_inception_distance(metric.real_sample(), metric.fake_sample(),
                                         num_subsets=20, subset_size=200, seed=0)
    assert float(result["kid"]) == pytest.approx(expected.mean, rel=1e-12)
    assert float(result["kid_std"]) == pytest.approx(expected.std, rel=1e-12)
    assert float(result["kid"]) > 3 * float(result["kid_std"])  # different laws


def test_kid_sample_does_not_depend_on_batching_when_capped():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 4)).astype(np.float32)
    samples = []
    for size in (3000, 100, 777):
        metric = KernelInceptionDistance(4, max_samples=250, num_subsets=5, subset_size=100)
        for chunk in batches(x, size):
            metric.update_state(real_features=chunk, fake_features=chunk)
        samples.append(metric.real_sample())
    assert samples[0].shape == (250, 4)
    for other in samples[1:]:
        np.testing.assert_array_equal(samples[0], other)


def test_kid_stream_sample_is_uniform_over_positions():
    """Bottom-k keys give every stream position the same chance to be kept: feed the positions
    themselves and check the kept ones spread evenly (not clumped at the start or the end)."""
    n, capacity = 20_000, 2000
    positions = np.arange(n, dtype=np.float32)[:, None]
    metric = KernelInceptionDistance(1, max_samples=capacity)
    for chunk in batches(positions, 4096):
        metric.update_state(real_features=chunk)
    kept = metric.real_sample()[:, 0]
    assert len(np.unique(kept)) == capacity
    counts, _ = np.histogram(kept, bins=10, range=(0, n))
    # Each decile expects 200 rows (binomial sd ~13.4); allow 5 sd.
    assert np.all(np.abs(counts - 200) < 67), counts
    keys = stream_keys(tf.range(10_000, dtype=tf.int64), seed=3).numpy()
    assert keys.min() >= 0 and len(np.unique(keys)) == 10_000
    assert abs(np.corrcoef(np.arange(10_000), keys)[0, 1]) < 0.05


def test_kid_near_zero_for_one_distribution_through_the_metric():
    rng = np.random.default_rng(3)
    metric = KernelInceptionDistance(8, num_subsets=40, subset_size=250, max_samples=1500)
    metric.update_state(real_features=rng.normal(size=(1500, 8)),
                        fake_features=rng.normal(size=(1500, 8)))
    result = metric.result()
    assert abs(float(result["kid"])) < 0.5 * float(result["kid_std"])


def test_kid_reference_and_reset():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(400, 3))
    reference = FeatureStatistics.from_features(real, sample_size=300, seed=1)
    metric = KernelInceptionDistance(3, num_subsets=5, subset_size=100, max_samples=200,
                                     reference=reference)
    assert metric.real_sample().shape == (200, 3)  # capped to max_samples
    metric.update_state(fake_features=rng.normal(size=(300, 3)) + 1.0)
    value = float(metric.result()["kid"])
    metric.reset_state()
    assert metric.fake_sample().shape == (0, 3)
    assert metric.real_sample().shape == (200, 3)
    metric.update_state(fake_features=rng.normal(size=(300, 3)) + 1.0)
    assert float(metric.result()["kid"]) == pytest.approx(value, rel=0.5)
    no_sample = FeatureStatistics(np.zeros(3), np.eye(3), 10)
    with pytest.raises(ValueError, match="no sample"):
        metric.set_reference(no_sample)
    clone = KernelInceptionDistance.from_config(metric.get_config())
    assert (clone.max_samples, clone.subset_size, clone.num_subsets) == (200, 100, 5)
