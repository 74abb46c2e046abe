"""docs/method.md §4 loss terms checked against independent computations."""
import math

import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import build_discriminator
from hvitgan_tf.models.config import preset
from hvitgan_tf.training import losses as L


def _critic(size=16):
    disc = build_discriminator(preset("tiny").discriminator)
    return lambda x: disc(x, training=False)[0]


def test_gradient_penalty_norm_matches_finite_differences():
    critic = _critic()
    x = tf.random.stateless_uniform([2, 16, 16, 3], [1, 2], -1.0, 1.0)
    norms = L.critic_input_gradient_norm(critic, x).numpy()

    # Central differences over every input coordinate, in one batched critic call per sample.
    eps = 1e-2
    fd_norms = []
    for i in range(2):
        flat = tf.reshape(x[i], [-1])
        basis = tf.eye(flat.shape[0]) * eps  # [768, 768]
        plus = tf.reshape(flat[None] + basis, [-1, 16, 16, 3])
        minus = tf.reshape(flat[None] - basis, [-1, 16, 16, 3])
        grad = (critic(plus)[:, 0] - critic(minus)[:, 0]) / (2 * eps)
        fd_norms.append(float(tf.norm(grad)))
    np.testing.assert_allclose(norms, fd_norms, rtol=2e-2)
    assert norms.min() > 0


def test_gradient_penalty_is_zero_at_unit_norm_and_positive_elsewhere():
    np.testing.assert_allclose(L.gradient_penalty(tf.constant([1.0, 0.0, 3.0])).numpy(),
                               [0.0, 1.0, 4.0])


def _penalty_gradient_at_a_vanishing_input_gradient():
    # D(x) = w * sum(x^2): its input gradient 2 w x depends on w and is exactly zero at x = 0,
    # where a bare sqrt has an infinite derivative (0 * inf = NaN in the chain rule).
    weight = tf.Variable(0.5)
    critic = lambda x: weight * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]
    x = tf.zeros([3, 4, 4, 3])
    with tf.GradientTape() as tape:
        penalty = tf.reduce_sum(L.gradient_penalty(L.critic_input_gradient_norm(critic, x)))
    return penalty, tape.gradient(penalty, weight)


def test_penalty_second_order_gradient_stays_finite_when_input_gradient_vanishes():
    penalty, grad = _penalty_gradient_at_a_vanishing_input_gradient()
    assert penalty.numpy() == pytest.approx(3.0, rel=1e-5)
    assert grad is not None and np.isfinite(grad.numpy())


def test_without_the_epsilon_the_same_gradient_is_nan(monkeypatch):
    """The check above can fail: with a bare sqrt the penalty's weight gradient is NaN."""
    monkeypatch.setattr(L, "GRADIENT_NORM_EPSILON", 0.0)
    _, grad = _penalty_gradient_at_a_vanishing_input_gradient()
    assert np.isnan(grad.numpy())


def test_interpolation_uses_one_alpha_per_sample():
    real = tf.ones([2, 2, 2, 3])
    fake = -tf.ones([2, 2, 2, 3])
    mixed = L.interpolate(real, fake, tf.constant([0.0, 0.75]))
    np.testing.assert_allclose(mixed[0].numpy(), -1.0)
    np.testing.assert_allclose(mixed[1].numpy(), 0.5)


def test_temperature_weighting_value_and_gradient():
    layer = L.TemperatureWeightedLoss(["a", "b"], mode="temperature")
    layer.task_params[0].assign(0.7)
    ce = [tf.constant(2.0), tf.constant(3.0)]
    with tf.GradientTape() as tape:
        total, s = layer(ce)
    expected = math.exp(-0.7) * 2.0 + 0.35 + 3.0 + 0.0
    assert float(total) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(s.numpy(), [0.7, 0.0])
    grads = tape.gradient(total, layer.trainable_variables)
    # d/ds (e^-s CE + s/2) = -e^-s CE + 1/2
    np.testing.assert_allclose([g.numpy() for g in grads],
                               [-math.exp(-0.7) * 2.0 + 0.5, -3.0 + 0.5], rtol=1e-6)


def test_temperature_regulariser_is_counted_once_over_replicas():
    layer = L.TemperatureWeightedLoss(["a"], mode="temperature")
    layer.task_params[0].assign(1.0)
    one, _ = layer([tf.constant(4.0)], num_replicas=1)
    shares = [layer([tf.constant(2.0)], num_replicas=2)[0] for _ in range(2)]  # two replicas, half each
    assert float(one) == pytest.approx(float(sum(shares)), rel=1e-6)


def test_kendall_weighting_starts_at_sigma_one():
    layer = L.TemperatureWeightedLoss(["a"], mode="kendall")
    total, s = layer([tf.constant(3.0)])
    assert float(total) == pytest.approx(1.5, rel=1e-5)  # CE / (2 * 1) + log 1
    assert float(s[0]) == pytest.approx(0.0, abs=1e-5)


def test_none_weighting_is_the_plain_sum_without_weights():
    layer = L.TemperatureWeightedLoss(["a", "b"], mode="none")
    total, _ = layer([tf.constant(2.0), tf.constant(3.0)])
    assert float(total) == 5.0
    assert layer.trainable_variables == []


def test_unknown_weighting_mode_is_rejected():
    with pytest.raises(ValueError, match="temperature"):
        L.TemperatureWeightedLoss(["a"], mode="softmax")
