"""The critic's minibatch standard deviation: grouped, optional, and kept out of the class head."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import build_discriminator, preset
from hvitgan_tf.models.config import ConfigError
from hvitgan_tf.models.discriminator import MinibatchStd


def test_spread_is_computed_per_group_of_consecutive_images():
    layer = MinibatchStd(4)
    layer.build((None, 3))
    layer.scale.assign(1.0)
    same = np.ones((4, 3), np.float32)
    varied = np.array([[0, 0, 0], [2, 2, 2], [0, 0, 0], [2, 2, 2]], np.float32)
    out = layer(tf.constant(np.concatenate([same, varied]))).numpy()[:, 0]
    np.testing.assert_allclose(out[:4], 1e-4, atol=1e-6)  # sqrt(0 + 1e-8)
    np.testing.assert_allclose(out[4:], 1.0, rtol=1e-4)  # std of {0, 2, 0, 2}
    # 6 images: the largest divisor of 4 that divides 6 is 2; 3 images: groups of one.
    assert layer(tf.zeros((6, 3))).shape == (6, 1)
    np.testing.assert_allclose(layer(tf.constant(varied[:3])).numpy(), 1e-4, atol=1e-6)


def test_off_by_default_and_only_the_critic_score_sees_the_batch():
    assert preset("tiny", 2).discriminator.minibatch_std_group == 0  # the paper's form
    assert build_discriminator(preset("tiny", 2).discriminator).minibatch_std is None
    cfg = preset("tiny", 2).replace(d_minibatch_std_group=4).discriminator
    disc = build_discriminator(cfg)
    disc.minibatch_std.scale.assign(2.0)
    images = tf.random.stateless_uniform((8, 16, 16, 3), (0, 1), -1, 1)
    source, logits = disc(images)
    source_alone, logits_alone = disc(images[:4])
    swapped, logits_swapped = disc(tf.concat([images[:4], -images[4:]], 0))
    # Class logits are per image whatever the companions (sampling confidences rely on it)...
    np.testing.assert_allclose(logits_swapped[:4], logits[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits_alone, logits[:4], rtol=1e-5, atol=1e-6)
    # ...and the critic score of the first group depends only on that group.
    np.testing.assert_allclose(swapped[:4], source[:4], rtol=1e-5, atol=1e-6)
    # The critic score really reads the group's spread: one shared, positive offset per group.
    disc.minibatch_std.scale.assign(0.0)
    offset = (source_alone - disc(images[:4])[0]).numpy()[:, 0]
    np.testing.assert_allclose(offset, offset[0], rtol=1e-5)
    assert offset[0] > 0


def test_second_order_gradients_reach_the_scale():
    cfg = preset("tiny", 2).replace(d_minibatch_std_group=2).discriminator
    disc = build_discriminator(cfg)
    x = tf.random.stateless_uniform((4, 16, 16, 3), (2, 3), -1, 1)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            score = tf.reduce_sum(disc(x)[0])
        penalty = tf.reduce_sum(tf.square(inner.gradient(score, x)))
    grad = outer.gradient(penalty, disc.minibatch_std.scale)
    assert grad is not None and np.isfinite(grad.numpy())


def test_group_of_one_is_refused():
    with pytest.raises(ConfigError, match="minibatch_std_group"):
        preset("tiny", 2).replace(d_minibatch_std_group=1)


def test_training_refuses_a_batch_that_would_mix_real_and_fake_groups():
    from hvitgan_tf.errors import UserError
    from hvitgan_tf.training.config import TrainConfig
    from hvitgan_tf.training.gan import HViTGAN

    model_config = preset("tiny", 2).replace(d_minibatch_std_group=4)
    with pytest.raises(UserError, match="batch_size 6 must be a multiple of .* 4"):
        HViTGAN(model_config, TrainConfig(batch_size=6), [8, 8])
