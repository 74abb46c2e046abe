"""Truncated latent noise (docs/method.md §6.1): exactness, per-seed purity, and SavedModel
behaviour."""
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from hvitgan_tf import noise
from hvitgan_tf.noise import truncated_noise

LATENT = 16


def test_rng_is_tensorflows_philox_stream_per_seed():
    # The vectorised Philox must reproduce TF's own single-seed op row by row, including
    # negative and > 2**32 seeds (two's-complement and the high seed word).
    seeds = np.array([0, 1, 2, -5, 2**40 + 3, 2**63 - 1], np.int64)
    ours = noise._per_seed_uniform(tf.constant(seeds), 7).numpy()
    for row, seed in zip(ours, seeds):
        reference = tf.random.stateless_uniform(
            [7], seed=tf.constant([seed, noise.NOISE_STREAM], tf.int64), dtype=tf.float64,
            alg="philox",
        ).numpy()
        np.testing.assert_array_equal(row, reference)


def test_same_seed_same_noise_and_different_seeds_differ():
    seeds = tf.constant([3, 4, 5], tf.int64)
    first = truncated_noise(seeds, LATENT, 1.0).numpy()
    second = truncated_noise(seeds, LATENT, 1.0).numpy()
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.shape == (3, LATENT)
    assert not np.allclose(first[0], first[1]) and not np.allclose(first[1], first[2])


def test_row_depends_only_on_its_seed_and_psi():
    alone = truncated_noise(tf.constant([42], tf.int64), LATENT, [0.7]).numpy()[0]
    # Same sample at different positions, in batches of different sizes, with neighbours that
    # have other seeds and other ψ.
    batch_a = truncated_noise(tf.constant([1, 42, 9], tf.int64), LATENT, [2.0, 0.7, 0.1]).numpy()
    batch_b = truncated_noise(
        tf.constant([7, 8, 10, 11, 42], tf.int64), LATENT, [0.3, 5.0, 1.0, 0.0, 0.7]
    ).numpy()
    np.testing.assert_array_equal(batch_a[1], alone)
    np.testing.assert_array_equal(batch_b[4], alone)


def test_int32_seeds_match_int64_and_latent_prefix_is_stable():
    z64 = truncated_noise(tf.constant([5, 6], tf.int64), 8, 1.5).numpy()
    z32 = truncated_noise(tf.constant([5, 6], tf.int32), 8, 1.5).numpy()
    np.testing.assert_array_equal(z32, z64)
    # Odd sizes use half of the last Philox block; the first 7 entries are the same stream.
    np.testing.assert_array_equal(truncated_noise(tf.constant([5, 6]), 7, 1.5).numpy(),
                                  z64[:, :7])


def test_scalar_truncation_broadcasts_like_a_vector():
    seeds = tf.constant([10, 11, 12], tf.int64)
    np.testing.assert_array_equal(
        truncated_noise(seeds, LATENT, 0.8).numpy(),
        truncated_noise(seeds, LATENT, tf.fill([3], 0.8)).numpy(),
    )


def test_psi_zero_gives_exact_positive_zeros():
    z = truncated_noise(tf.range(4, dtype=tf.int64), LATENT, [0.0, 0.0, 1.0, 0.0]).numpy()
    for row in (0, 1, 3):
        assert np.all(z[row] == 0.0) and not np.any(np.signbit(z[row]))
    assert np.any(z[2] != 0.0)


@pytest.mark.parametrize("psi", [1e-6, 0.05, 0.5, 1.0, 2.5])
def test_every_entry_within_psi(psi):
    z = truncated_noise(tf.range(512, dtype=tf.int64), 64, psi).numpy()
    assert np.all(np.abs(z) <= np.float32(psi))
    # ... and the interval is actually used, not collapsed to the centre.
    assert np.max(np.abs(z)) > 0.95 * psi


@pytest.mark.parametrize("psi", [0.5, 1.0, 2.0])
def test_distribution_is_the_truncated_normal(psi):
    z = truncated_noise(tf.range(2048, dtype=tf.int64) + 1000, 64, psi).numpy().ravel()
    result = stats.kstest(z, stats.truncnorm(-psi, psi).cdf)
    assert result.statistic < 0.005, result  # 131072 samples: KS 1% critical value ~0.0045
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("psi", [1e3, float("inf")])
def test_large_psi_is_a_finite_standard_normal(psi):
    z = truncated_noise(tf.range(2048, dtype=tf.int64), 128, psi).numpy()
    assert np.all(np.isfinite(z))
    flat = z.ravel().astype(np.float64)
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1.0) < 0.01
    assert stats.kstest(flat, "norm").pvalue > 1e-3
    # Beyond ~8.3 the truncation is a no-op in float64, so every large ψ gives the same draws.
    np.testing.assert_array_equal(
        z, truncated_noise(tf.range(2048, dtype=tf.int64), 128, float("inf")).numpy())


def test_extreme_uniforms_stay_finite():
    # The largest |w| the construction can produce must give a finite z even at ψ = inf.
    w = tf.constant([1.0 - 2.0**-52, -(1.0 - 2.0**-52)], tf.float64)
    z = np.sqrt(2.0) * tf.math.erfinv(w).numpy()
    assert np.all(np.isfinite(z)) and np.all(np.abs(z) < 8.3)


def _noise_module(latent_dim):
    class NoiseModule(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seed"),
                                      tf.TensorSpec([None], tf.float32, name="truncation")])
        def __call__(self, seed, truncation):
            return truncated_noise(seed, latent_dim, truncation)

    return NoiseModule()


def test_graph_mode_unknown_batch_and_saved_model_round_trip(tmp_path):
    module = _noise_module(LATENT)
    seeds = tf.constant([4, -1, 2**33, 17, 0], tf.int64)
    psi = tf.constant([1.0, 0.0, 3.0, 0.25, float("inf")])
    eager = truncated_noise(seeds, LATENT, psi).numpy()
    np.testing.assert_array_equal(module(seeds, psi).numpy(), eager)
    np.testing.assert_array_equal(module(seeds[:2], psi[:2]).numpy(), eager[:2])

    tf.saved_model.save(module, str(tmp_path / "noise"))
    loaded = tf.saved_model.load(str(tmp_path / "noise"))
    np.testing.assert_array_equal(loaded(seeds, psi).numpy(), eager)
    np.testing.assert_array_equal(loaded(seeds[3:], psi[3:]).numpy(), eager[3:])


def test_xla_gives_identical_values():
    seeds = tf.range(8, dtype=tf.int64) * 1000003
    compiled = tf.function(lambda s: truncated_noise(s, LATENT, 1.3), jit_compile=True)
    np.testing.assert_array_equal(compiled(seeds).numpy(),
                                  truncated_noise(seeds, LATENT, 1.3).numpy())


def test_bad_arguments_fail_clearly():
    with pytest.raises(TypeError, match="integer"):
        truncated_noise(tf.constant([1.0]), LATENT, 1.0)
    with pytest.raises(ValueError, match="latent_dim"):
        truncated_noise(tf.constant([1]), 0, 1.0)
