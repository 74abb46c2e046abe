"""GeneratorConfig.shuffle_blur (a [1, 2, 1] filter after each pixel shuffle) and
GeneratorConfig.spatial_noise (a per-token noise map made from each stage's noise chunk)."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import build_generator, preset
from hvitgan_tf.models.config import ConfigError, GeneratorConfig, ModelConfig
from hvitgan_tf.models.flops import generator_forward
from hvitgan_tf.models.generator import GeneratorStage, spatial_noise_projection
from hvitgan_tf.models.resampling import PixelShuffleUpsample


def _inputs(cfg, n=4, seed=0):
    z = tf.random.stateless_normal((n, cfg.latent_dim), (seed, 1))
    return z, tf.constant(np.arange(n) % cfg.num_classes, tf.int32)


def _alternating_children(g=4, width=8, seed=0):
    """``[1, g*g, width]`` tokens that are all one random vector: after a pixel shuffle, the
    children in each corner of their parents are alike, a pattern with a period of two."""
    vector = np.random.default_rng(seed).standard_normal(width).astype("float32")
    return tf.constant(np.tile(vector, (1, g * g, 1)))


def test_the_blur_removes_the_pattern_a_pixel_shuffle_repeats_every_two_tokens():
    tokens = _alternating_children()
    plain = PixelShuffleUpsample()(tokens).numpy().reshape(8, 8, 2)
    blurred = PixelShuffleUpsample(blur=True)(tokens).numpy().reshape(8, 8, 2)
    assert plain.std(axis=(0, 1)).min() > 0.1  # the corners differ without the blur
    # With it every token, at the borders too, is the mean of the four corners.
    np.testing.assert_allclose(blurred, np.broadcast_to(plain.mean(axis=(0, 1)), blurred.shape),
                               atol=1e-6)


def test_the_blur_is_the_121_filter_and_keeps_a_constant_grid():
    rng = np.random.default_rng(1)
    tokens = tf.constant(rng.standard_normal((2, 9, 12)).astype("float32"))
    blurred = PixelShuffleUpsample(blur=True)(tokens).numpy().reshape(2, 6, 6, 3)
    grid = PixelShuffleUpsample()(tokens).numpy().reshape(2, 6, 6, 3)
    padded = np.pad(grid, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    taps = np.array([1.0, 2.0, 1.0]) / 4
    expected = sum(taps[i] * taps[j] * padded[:, i:i + 6, j:j + 6]
                   for i in range(3) for j in range(3))
    np.testing.assert_allclose(blurred, expected, atol=1e-6)
    constant = tf.ones((1, 4, 8))
    np.testing.assert_allclose(PixelShuffleUpsample(blur=True)(constant).numpy(), 1.0, atol=1e-7)


def test_the_blur_reaches_every_pixel_shuffle_stage_and_changes_the_image():
    cfg = dataclasses.replace(preset("tiny", 3).generator, shuffle_blur=True)
    tf.keras.utils.set_random_seed(0)
    generator = build_generator(cfg)
    assert [getattr(s.upsample, "blur", None) for s in generator.stages] == [
        None, True, True, True]  # stage 1 is bicubic
    plain = build_generator(preset("tiny", 3).generator)
    plain.set_weights(generator.get_weights())  # the blur has no weights
    with_blur = generator(_inputs(cfg), training=False).numpy()
    without = plain(_inputs(cfg), training=False).numpy()
    assert np.mean(np.abs(with_blur - without)) > 1e-3
    # Less of the image is at the period of two pixels (the last shuffle's own pattern).
    def period_two(images):
        return np.mean(np.abs(images[:, :-2] - 2 * images[:, 1:-1] + images[:, 2:]))
    assert period_two(with_blur) < period_two(without)


def test_the_noise_map_is_fixed_and_unit_scale():
    a, b = spatial_noise_projection(32, 256), spatial_noise_projection(32, 256)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 256) and a.dtype == np.float32
    z = np.random.default_rng(0).standard_normal((2000, 32))
    assert abs((z @ a).std() - 1.0) < 0.05
    assert not np.allclose(spatial_noise_projection(32, 64), a[:, :64])  # one per grid


def test_the_noise_map_is_the_stage_chunk_times_the_fixed_matrix_times_the_strength():
    """A stage without encoders shows exactly what the map adds to the upsampled tokens."""
    rng = np.random.default_rng(3)
    noise_dim, width = 4, 16
    tokens = tf.constant(rng.standard_normal((2, 16, width)).astype("float32"))
    condition = rng.standard_normal((2, noise_dim + 5)).astype("float32")
    for class_projection in (True, False):
        second = condition if class_projection else condition[:, :noise_dim]
        stage = GeneratorStage("pixel_shuffle", 0, 1, class_projection=class_projection,
                               noise_scale=0.5, noise_dim=noise_dim)
        stage.build([(None, 16, width), (None, second.shape[1])])
        # +-0.5 on alternate channels, not one value: a LayerNorm would remove a map added to
        # every channel alike.
        strength = stage.noise_strength.numpy()
        shuffled_width = width // 4
        np.testing.assert_array_equal(strength, 0.5 * np.array([1, -1] * (shuffled_width // 2)))
        with_noise = stage([tokens, tf.constant(second)]).numpy()
        stage.noise_strength.assign(np.zeros_like(strength))
        without = stage([tokens, tf.constant(second)]).numpy()
        stage.noise_strength.assign(strength)
        noise_map = condition[:, :noise_dim] @ spatial_noise_projection(noise_dim, 64)  # [2, 64]
        np.testing.assert_allclose(with_noise - without, noise_map[:, :, None] * strength,
                                   atol=1e-5)


def test_spatial_noise_reaches_the_image_in_the_generator_with_or_without_class_projection():
    for class_projection in (True, False):
        cfg = dataclasses.replace(preset("tiny", 3).generator, spatial_noise=(0, 0, 0.5, 0),
                                  class_projection=class_projection)
        generator = build_generator(cfg)
        stage = generator.stages[2]
        assert [s.noise_strength is None for s in generator.stages] == [True, True, False, True]
        assert stage.noise_dim == cfg.noise_chunk and stage.noise_strength.trainable
        z, labels = _inputs(cfg)
        images = generator([z, labels], training=False).numpy()
        np.testing.assert_array_equal(images, generator([z, labels], training=False).numpy())
        strength = stage.noise_strength.numpy()
        stage.noise_strength.assign(np.zeros_like(strength))
        silent = generator([z, labels], training=False).numpy()
        stage.noise_strength.assign(strength)
        assert np.abs(images - silent).mean() > 1e-3, class_projection
        # Stage 3's map is made from stage 3's chunk: zero that chunk and the strength no
        # longer matters.
        z_cut = z.numpy()
        z_cut[:, 2 * cfg.noise_chunk:3 * cfg.noise_chunk] = 0
        cut = generator([z_cut, labels], training=False).numpy()
        stage.noise_strength.assign(np.zeros_like(strength))
        cut_silent = generator([z_cut, labels], training=False).numpy()
        stage.noise_strength.assign(strength)
        np.testing.assert_allclose(cut, cut_silent, atol=1e-6)


def test_the_noise_strength_learns():
    cfg = dataclasses.replace(preset("tiny", 3).generator, spatial_noise=(0, 0.3, 0.3, 0.3))
    generator = build_generator(cfg)
    z, labels = _inputs(cfg)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(generator([z, labels], training=True)))
    strengths = [s.noise_strength for s in generator.stages if s.noise_strength is not None]
    assert len(strengths) == 3
    for gradient in tape.gradient(loss, strengths):
        assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0


def test_both_options_default_to_the_paper_and_old_configs_read_as_off():
    cfg = GeneratorConfig()
    assert cfg.shuffle_blur is False and cfg.spatial_noise == (0.0, 0.0, 0.0, 0.0)
    saved = preset("small", 2).to_dict()
    for field in ("shuffle_blur", "spatial_noise"):
        saved["generator"].pop(field)  # a run saved before these fields existed
    old = ModelConfig.from_dict(saved)
    assert old.generator.shuffle_blur is False and old.generator.spatial_noise == (0,) * 4
    scalar = dataclasses.replace(cfg, spatial_noise=0.25)
    assert scalar.spatial_noise == (0.25,) * 4
    again = ModelConfig.from_dict(json.loads(json.dumps(preset("small", 3).to_dict())))
    assert again == preset("small", 3)


@pytest.mark.parametrize("changes, field", [
    ({"spatial_noise": (0, -0.1, 0, 0)}, "spatial_noise[1]"),
    ({"spatial_noise": (0, float("nan"), 0, 0)}, "spatial_noise[1]"),
    ({"spatial_noise": (0, 0, float("inf"), 0)}, "spatial_noise[2]"),
    ({"spatial_noise": (0, True, 0, 0)}, "spatial_noise[1]"),
    ({"spatial_noise": (0, "0.3", 0, 0)}, "spatial_noise[1]"),
    ({"spatial_noise": (0.1, 0.1)}, "spatial_noise"),
    ({"shuffle_blur": "yes"}, "shuffle_blur"),
])
def test_bad_values_are_refused_by_name(changes, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        GeneratorConfig(**{**dataclasses.asdict(preset("tiny", 3).generator), **changes})


def test_the_flop_count_includes_the_noise_maps():
    # test_flops checks the count against TensorFlow's profile of the small preset, which has
    # both options on; here: what each noise map adds.
    cfg = dataclasses.replace(preset("tiny", 3).generator, shuffle_blur=True,
                              spatial_noise=(0.1, 0.2, 0.3, 0.4))
    plain = dataclasses.replace(cfg, spatial_noise=0.0, shuffle_blur=False)
    grids = [g * g for g in cfg.stage_grids]
    assert (generator_forward(cfg).total - generator_forward(plain).total
            == sum(2 * cfg.noise_chunk * n for n in grids))
    assert any(preset("small", 3).generator.spatial_noise)  # what test_flops profiles


def test_both_options_run_under_mixed_bfloat16_and_xla(mixed_bfloat16):
    cfg = dataclasses.replace(preset("tiny", 3).generator, shuffle_blur=True,
                              spatial_noise=(0, 0.3, 0.3, 0.3))
    generator = build_generator(cfg)
    z, labels = _inputs(cfg)

    @tf.function(jit_compile=True)
    def step(z, labels):
        with tf.GradientTape() as tape:
            images = generator([z, labels], training=True)
            loss = tf.reduce_mean(tf.square(images))
        return images, tape.gradient(loss, generator.stages[3].noise_strength)

    images, gradient = step(z, labels)
    assert images.dtype == tf.float32 and np.all(np.isfinite(images.numpy()))
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))


def test_a_generator_with_both_options_round_trips_through_a_keras_file(tmp_path):
    import keras

    cfg = dataclasses.replace(preset("tiny", 3).generator, shuffle_blur=True,
                              spatial_noise=(0, 0.3, 0.3, 0.3))
    generator = build_generator(cfg)
    for stage in generator.stages[1:]:  # strengths that differ from their starting values
        stage.noise_strength.assign(stage.noise_strength * 1.7 + 0.01)
    z, labels = _inputs(cfg)
    expected = generator([z, labels], training=False).numpy()
    path = tmp_path / "generator.keras"
    generator.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.config == cfg
    np.testing.assert_array_equal(loaded([z, labels], training=False).numpy(), expected)
