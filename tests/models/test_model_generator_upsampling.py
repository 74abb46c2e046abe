"""Per-stage choice of upsampling: bicubic stages interpolate, and give no 8-pixel tiles."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer, option_builder

from hvitgan_tf.models import build_generator, preset
from hvitgan_tf.models.config import ConfigError
from hvitgan_tf.models.flops import generator_forward

ALL_BICUBIC = ("bicubic",) * 4


def _images(generator, labels, seed=0):
    z = tf.random.stateless_normal((len(labels), generator.config.latent_dim), (seed, 1))
    return generator([z, tf.constant(labels, tf.int32)], training=False).numpy()


def _shift_difference(images, shift):
    """Mean |x - x shifted by ``shift`` pixels|, over both axes."""
    return float(np.mean(np.abs(images - np.roll(images, shift, axis=1)))
                 + np.mean(np.abs(images - np.roll(images, shift, axis=2))))


def test_the_default_is_the_papers_and_bicubic_stages_keep_their_width():
    cfg = preset("tiny", 3).generator
    assert cfg.upsampling == ("bicubic", "pixel_shuffle", "pixel_shuffle", "pixel_shuffle")
    assert [s.upsample_mode for s in build_generator(cfg).stages] == list(cfg.upsampling)
    mixed = dataclasses.replace(cfg, upsampling=("bicubic", "bicubic", "pixel_shuffle",
                                                 "pixel_shuffle"))
    assert mixed.stage_widths == (128, 128, 32, 8)


def test_bicubic_stages_with_widths_build_and_are_counted():
    cfg = dataclasses.replace(preset("tiny", 3).generator, upsampling=ALL_BICUBIC,
                              widths=(128, 64, 32, 16))
    generator = build_generator(cfg)
    assert [s.upsample_mode for s in generator.stages] == list(ALL_BICUBIC)
    # Stages 2-4 project to their (narrower) width before interpolating.
    assert [s.expand.kernel.shape[-1] for s in generator.stages[1:]] == [64, 32, 16]
    images = _images(generator, [0, 1, 2])
    assert images.shape == (3, 16, 16, 3) and np.all(np.abs(images) <= 1)

    batch = 2
    traced = tf.function(lambda z, y: generator([z, y]), input_signature=[
        tf.TensorSpec([batch, cfg.latent_dim]), tf.TensorSpec([batch], tf.int32)])
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    options["account_type_regexes"] = ["MatMul", "BatchMatMul.*"]
    profiled = model_analyzer.profile(traced.get_concrete_function().graph, options=options)
    assert int(profiled.total_float_ops) == batch * generator_forward(cfg).total


def test_pixel_shuffles_tile_the_untrained_image_and_bicubic_stages_do_not():
    """At initialisation each stage-1 token of the paper's generator paints its own 8x8 block
    (three pixel shuffles, attention still near identity), so the image nearly repeats with a
    period of 8 pixels; interpolating stages give a smooth image instead."""
    # The paper's output path: pixels from the last stage only, no output skips, plain pixel
    # shuffles, no noise maps.
    base = dataclasses.replace(preset("small", 10).generator, rgb_skips=False,
                               shuffle_blur=False, spatial_noise=0.0)
    labels = list(range(10)) + list(range(6))
    tf.keras.utils.set_random_seed(0)
    paper = _images(build_generator(base), labels)
    tf.keras.utils.set_random_seed(0)
    smooth = _images(build_generator(dataclasses.replace(
        base, upsampling=ALL_BICUBIC, widths=(256, 64, 32, 16))), labels)
    around = (_shift_difference(paper, 7) + _shift_difference(paper, 9)) / 2
    assert _shift_difference(paper, 8) < 0.7 * around
    assert _shift_difference(smooth, 8) > _shift_difference(smooth, 7)
    assert _shift_difference(smooth, 1) < 0.3 * _shift_difference(paper, 1)


@pytest.mark.parametrize("upsampling, message", [
    (("bicubic", "nearest", "bicubic", "bicubic"), "upsampling\\[1\\] must be one of"),
    (("bicubic", "bicubic"), "needs 4 values"),
])
def test_bad_upsampling_is_refused_by_name(upsampling, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(preset("tiny", 3).generator, upsampling=upsampling)


def test_fewer_shuffles_need_a_less_divisible_width():
    cfg = preset("tiny", 3).generator
    with pytest.raises(ConfigError, match="divisible by 64"):
        dataclasses.replace(cfg, embed_dim=96)
    assert dataclasses.replace(cfg, embed_dim=96, upsampling=ALL_BICUBIC).stage_widths == (96,) * 4
