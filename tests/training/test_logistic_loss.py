"""``adversarial_loss="logistic"``: the non-saturating game with an R1 penalty on real images,
checked term by term against direct computations on one batch."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.errors import UserError
from hvitgan_tf.training import losses as L
from hvitgan_tf.training.config import TrainConfig


def _softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def test_logistic_critic_loss_is_low_only_when_reals_score_high_and_fakes_low():
    loss = L.logistic_critic_loss(tf.constant([5.0, -5.0, 0.0]), tf.constant([-5.0, 5.0, 0.0]))
    np.testing.assert_allclose(loss.numpy(), [2 * _softplus(-5.0), 2 * _softplus(5.0),
                                              2 * np.log(2.0)], rtol=1e-6)


def _model(gan_on_one_batch, tiny_train_config, **changes):
    config = tiny_train_config.replace(diffaug="none", loss_weighting="none",
                                       adversarial_loss="logistic", r1_gamma=0.5,
                                       drift_weight=0.0, **changes)
    return gan_on_one_batch(config, seed=2)


def test_critic_terms_are_the_logistic_loss_and_r1_on_the_real_images(gan_on_one_batch,
                                                                      tiny_train_config):
    model, real, labels, fake, draws = _model(gan_on_one_batch, tiny_train_config)
    per_example = 1.0 / len(labels)
    terms, stats = model.critic_terms(real, labels, fake, draws, per_example)

    d_real = model.discriminator(real, training=True)[0][:, 0].numpy()
    d_fake = model.discriminator(fake, training=True)[0][:, 0].numpy()
    expected = np.mean(_softplus(-d_real) + _softplus(d_fake))
    assert float(terms["critic"]) == pytest.approx(expected, rel=1e-4)

    with tf.GradientTape() as tape:
        tape.watch(real)
        scores = model.discriminator(real, training=True)[0]
    squared = tf.reduce_sum(tf.square(tape.gradient(scores, real)), axis=[1, 2, 3]).numpy()
    # γ/2 E||∇D(x)||² at the real images (not at interpolates, not the two-sided GP).
    assert float(terms["gradient_penalty"]) == pytest.approx(0.25 * squared.mean(), rel=1e-3)
    assert float(stats["gp"]) == pytest.approx(squared.mean(), rel=1e-3)

    wgan = model.train_config.replace(adversarial_loss="wgan-gp")
    model.train_config = wgan
    wgan_terms, _ = model.critic_terms(real, labels, fake, draws, per_example)
    assert float(wgan_terms["critic"]) == pytest.approx(np.mean(d_fake - d_real), rel=1e-4,
                                                        abs=1e-6)


def test_generator_term_is_non_saturating(gan_on_one_batch, tiny_train_config):
    model, _, labels, _, draws = _model(gan_on_one_batch, tiny_train_config)
    terms, stats, fake = model.generator_terms(draws, 1.0 / len(labels))
    scores = model.discriminator(fake, training=True)[0][:, 0].numpy()
    assert float(terms["adversarial"]) == pytest.approx(np.mean(_softplus(-scores)), rel=1e-4)


def test_a_logistic_training_step_moves_both_networks(gan_on_one_batch, tiny_train_config):
    model, real, labels, _, _ = _model(gan_on_one_batch, tiny_train_config)
    before_g = [w.numpy().copy() for w in model.g_variables]
    before_d = [w.numpy().copy() for w in model.d_variables]
    images = tf.stack([real[:4], real[:4]], axis=1)  # [batch, n_critic, H, W, 3]
    micro_labels = tf.stack([labels[:4], labels[:4]], axis=1)
    logs = model.train_step((images, micro_labels))
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before_g, model.g_variables))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before_d, model.d_variables))


def test_an_unknown_adversarial_loss_is_refused_by_name():
    with pytest.raises(UserError, match="adversarial_loss.*hinge"):
        TrainConfig(adversarial_loss="hinge")
    with pytest.raises(UserError, match="r1_gamma"):
        TrainConfig(r1_gamma=-1.0)
