"""mode_seeking: fakes of one label with different noise are pushed apart (Mao et al. 2019)."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.training import gan as G
from hvitgan_tf.training.gan import HViTGAN


def test_pairs_ask_for_the_same_label():
    labels = tf.constant([3, 1, 4, 1, 5])
    assert G._paired_labels(labels).numpy().tolist() == [3, 3, 4, 4, 5]


def test_ratio_is_image_distance_over_noise_distance():
    images = tf.constant(np.stack([np.zeros((2, 2, 3)), np.full((2, 2, 3), 0.5),
                                   np.ones((2, 2, 3)), np.ones((2, 2, 3)),
                                   np.zeros((2, 2, 3))]), tf.float32)
    z = tf.constant([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0], [3.0, 3.0], [9.0, 9.0]])
    # Pairs (0, 1): |0 - 0.5| / |0 - 2| = 0.25; (2, 3): identical images -> 0; row 4 unpaired.
    np.testing.assert_allclose(G._mode_seeking_ratios(images, z).numpy(), [0.25, 0.0])


def test_the_term_is_in_the_generator_loss_and_pushes_a_pair_apart(tiny_model_config,
                                                                   tiny_train_config):
    config = tiny_train_config.replace(diffaug="none", loss_weighting="none", mode_seeking=1.0)
    model = HViTGAN(tiny_model_config, config, [16, 16])
    model.compile()
    draws = model._draw(model.iterations_done, 0, 6, 0, 6)
    with tf.GradientTape() as tape:
        terms, stats, fake = model.generator_terms(draws, 1.0 / 6)
    ratios = G._mode_seeking_ratios(fake, draws["z"])
    assert float(terms["mode_seeking"]) == pytest.approx(
        float(tf.reduce_mean(1.0 / (ratios + G.MODE_SEEKING_EPSILON))), rel=1e-5)
    assert float(stats["ms_ratio"]) == pytest.approx(float(tf.reduce_mean(ratios)), rel=1e-5)
    # Descending the term moves the two images of each pair apart.
    gradient = tape.gradient(terms["mode_seeking"], fake)
    moved = fake - 1e-2 * gradient / tf.reduce_max(tf.abs(gradient))
    assert float(tf.reduce_mean(G._mode_seeking_ratios(moved, draws["z"]))) > float(
        tf.reduce_mean(ratios))

    off, off_stats = HViTGAN(tiny_model_config, tiny_train_config.replace(diffaug="none"),
                             [16, 16]).generator_terms(draws, 1.0 / 6)[:2]
    assert "mode_seeking" not in off and G.MODE_SEEKING_METRIC not in off_stats


def test_metrics_of_a_run_without_it_keep_their_columns(tiny_model_config, tiny_train_config):
    """metrics.csv is appended on resume under its first header: the column exists only when
    the term is on (it cannot be switched on by a resume)."""
    plain = HViTGAN(tiny_model_config, tiny_train_config, [16, 16])
    seeking = HViTGAN(tiny_model_config, tiny_train_config.replace(mode_seeking=0.1), [16, 16])
    assert G.MODE_SEEKING_METRIC not in plain.trackers
    assert G.MODE_SEEKING_METRIC in seeking.trackers


def test_an_odd_batch_is_refused(tiny_model_config, tiny_train_config):
    from hvitgan_tf.errors import UserError

    with pytest.raises(UserError, match="batch_size 5 must be even"):
        HViTGAN(tiny_model_config, tiny_train_config.replace(mode_seeking=0.1, batch_size=5),
                [16, 16])


def _checker(size, cell):
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return (((rows // cell) + (cols // cell)) % 2 * 2.0 - 1.0)[..., None] * np.ones(3)


def test_the_blurred_distance_ignores_grain_and_tiling_but_not_layout():
    """mode_seeking_blur: a pair that differs by a 4-pixel checkerboard or by pixel grain is
    nearly one image after a 3-pixel blur; a pair that differs by where the dark half is keeps
    most of its distance."""
    size = 32
    base = np.random.default_rng(0).uniform(-0.5, 0.5, (size, size, 3)) * 0.1
    ramp = np.linspace(-1, 1, size)[None, :, None] * np.ones((size, size, 3))
    grain = np.random.default_rng(1).standard_normal((size, size, 3))
    pairs = [base, base + 0.5 * _checker(size, 4), base, base + 0.5 * grain,
             base, base + 0.5 * ramp]
    images = tf.constant(np.stack(pairs), tf.float32)
    z = tf.constant([[0.0], [1.0]] * 3, tf.float32)
    pixels = G._mode_seeking_ratios(images, z).numpy()
    blurred = G._mode_seeking_ratios(images, z, blur=3.0).numpy()
    assert blurred[0] < 0.05 * pixels[0]  # tiling at the token pitch
    assert blurred[1] < 0.15 * pixels[1]  # grain
    assert blurred[2] > 0.8 * pixels[2]  # layout


def test_gaussian_blur_keeps_flat_images_and_the_mean():
    flat = tf.fill([2, 16, 16, 3], 0.3)
    np.testing.assert_allclose(G.gaussian_blur(flat, 3.0).numpy(), 0.3, atol=1e-6)
    noise = tf.random.stateless_normal([1, 16, 16, 3], seed=[1, 2])
    blurred = G.gaussian_blur(noise, 2.0)
    assert blurred.shape == noise.shape
    assert float(tf.math.reduce_std(blurred)) < 0.5 * float(tf.math.reduce_std(noise))
    # A kernel wider than the image is cut to what mirroring can pad (tiny images).
    assert G.gaussian_blur(tf.zeros([1, 4, 4, 3]), 5.0).shape == (1, 4, 4, 3)
    one_pixel = tf.ones([2, 1, 1, 3])
    np.testing.assert_array_equal(G.gaussian_blur(one_pixel, 3.0).numpy(), one_pixel.numpy())


def test_the_generator_term_compares_blurred_images(tiny_model_config, tiny_train_config):
    config = tiny_train_config.replace(diffaug="none", loss_weighting="none", mode_seeking=1.0,
                                       mode_seeking_blur=2.0)
    model = HViTGAN(tiny_model_config, config, [16, 16])
    model.compile()
    draws = model._draw(model.iterations_done, 0, 6, 0, 6)
    terms, stats, fake = model.generator_terms(draws, 1.0 / 6)
    blurred = G._mode_seeking_ratios(fake, draws["z"], blur=2.0)
    plain = G._mode_seeking_ratios(fake, draws["z"])
    assert float(stats["ms_ratio"]) == pytest.approx(float(tf.reduce_mean(blurred)), rel=1e-5)
    assert float(stats["ms_ratio"]) != pytest.approx(float(tf.reduce_mean(plain)), rel=1e-2)


def test_a_negative_blur_is_refused():
    from hvitgan_tf.errors import UserError
    from hvitgan_tf.training.config import TrainConfig

    with pytest.raises(UserError, match="mode_seeking_blur must be >= 0"):
        TrainConfig(mode_seeking_blur=-1.0)
    with pytest.raises(UserError, match="mode_seeking_blur must be >= 0, got nan"):
        TrainConfig(mode_seeking_blur=float("nan"))
    with pytest.raises(UserError, match="finite number of pixels, got inf"):
        TrainConfig(mode_seeking_blur=float("inf"))
