"""GeneratorConfig.rgb_skips: every stage paints an RGB image of its own grid; the coarser ones
are upsampled bicubically and summed with the last stage's before the tanh."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import build_generator, preset
from hvitgan_tf.models.config import ConfigError, GeneratorConfig
from hvitgan_tf.models.resampling import BicubicUpsample


def _inputs(cfg, n=4, seed=0):
    z = tf.random.stateless_normal((n, cfg.latent_dim), (seed, 1))
    return z, tf.constant(np.arange(n) % cfg.num_classes, tf.int32)


def _skip_generator():
    cfg = dataclasses.replace(preset("tiny", 3).generator, rgb_skips=True)
    return cfg, build_generator(cfg)


def test_each_stage_paints_on_its_own_grid_and_the_sum_is_the_image():
    cfg, generator = _skip_generator()
    assert [layer.name for layer in generator.skip_rgb] == [
        "to_rgb_stage_1", "to_rgb_stage_2", "to_rgb_stage_3"]
    images = generator(_inputs(cfg), training=False)
    assert images.shape == (4, cfg.image_size, cfg.image_size, 3)
    assert np.all(np.abs(images) <= 1.0)
    # Every stage's painting reaches the pixels: zero one and the image changes.
    for layer in [*generator.skip_rgb, generator.to_rgb]:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
        changed = generator(_inputs(cfg), training=False)
        assert float(tf.reduce_mean(tf.abs(changed - images))) > 1e-3, layer.name
        layer.set_weights([kernel, bias])


def test_the_first_stage_alone_gives_a_smooth_field_not_squares():
    cfg, generator = _skip_generator()
    z, labels = _inputs(cfg)
    for layer in [*generator.skip_rgb[1:], generator.to_rgb]:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    images = np.arctanh(np.clip(np.asarray(generator([z, labels], training=False)), -0.999999,
                                0.999999))
    # What the first stage painted on its 2H0 x 2H0 grid, resized x2 three times by hand.
    tokens = generator.input_position_embedding(tf.reshape(generator.input_projection(
        tf.concat([z, tf.one_hot(labels, cfg.num_classes)], -1)),
        (-1, cfg.initial_grid ** 2, cfg.embed_dim)))
    condition = tf.concat([tf.split(z, 4, axis=-1)[0], generator.class_embedding(labels)], -1)
    painted = generator.skip_rgb[0](generator.stages[0]([tokens, condition]))
    for _ in range(3):
        painted = BicubicUpsample()(painted)
    expected = np.asarray(painted).reshape(images.shape)
    np.testing.assert_allclose(images, expected, atol=1e-4)
    # Neighbouring pixels of a bicubic field differ far less than the coarse cells do.
    coarse = np.asarray(generator.skip_rgb[0](generator.stages[0]([tokens, condition])))
    step = np.abs(np.diff(images, axis=1)).max()
    assert step < 0.5 * np.abs(np.diff(coarse.reshape(4, 2 * cfg.initial_grid, -1, 3),
                                       axis=1)).max()


def test_the_option_is_serialised_validated_and_off_by_default():
    cfg, generator = _skip_generator()
    restored = type(generator).from_config(generator.get_config())
    assert restored.config.rgb_skips is True
    assert GeneratorConfig(**dataclasses.asdict(cfg)).rgb_skips is True
    # A config saved before the option existed is the generator without skips.
    saved = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "rgb_skips"}
    assert GeneratorConfig(**saved).rgb_skips is False
    plain = build_generator(preset("tiny", 3).generator)
    assert plain.skip_rgb == [] and plain.skip_upsample == []
    with pytest.raises(ConfigError, match="rgb_skips"):
        dataclasses.replace(cfg, rgb_skips=1)


def test_the_skips_paint_in_float32_under_mixed_bfloat16(mixed_bfloat16):
    cfg, generator = _skip_generator()
    assert all(layer.compute_dtype == "float32"
               for layer in [*generator.skip_rgb, *generator.skip_upsample])
    with tf.GradientTape() as tape:
        images = generator(_inputs(cfg), training=True)
        loss = tf.reduce_mean(images ** 2)
    assert images.dtype == tf.float32 and np.all(np.isfinite(images))
    grads = tape.gradient(loss, generator.trainable_variables)
    assert not [v.path for v, g in zip(generator.trainable_variables, grads) if g is None]
