"""The class losses' say in the shared weights: measured per term, and floored on request."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.training.config import MAX_CLASS_BOOST
from hvitgan_tf.training.diagnostics import (loss_term_gradient_norms,
                                             shared_discriminator_variables)
from hvitgan_tf.training.gan import HViTGAN



def _arrays(n=8, size=16):
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 2).astype(np.int32)
    base = np.where(labels[:, None, None, None] == 1, 0.5, -0.5)
    images = np.clip(base + 0.3 * rng.standard_normal((n, size, size, 3)), -1, 1)
    return images.astype(np.float32), labels


def _fit(source, model_config, train_config, iterations):
    from hvitgan_tf.training.data_stream import make_training_stream, training_examples

    model = _model(model_config, train_config)
    stream = make_training_stream(
        tf.distribute.get_strategy(),
        training_examples(source, model_config.image_size, train_config.seed),
        batch_size=train_config.batch_size, n_critic=train_config.n_critic)
    history = model.fit(stream, epochs=1, steps_per_epoch=iterations, verbose=0, shuffle=False)
    return model, {k: v[-1] for k, v in history.history.items()}


def _model(model_config, train_config):
    model = HViTGAN(model_config, train_config, [16, 16])
    model.compile()
    return model


def _critic_gradients(model, images, labels):
    batch = len(labels)
    draws = model._draw(model.iterations_done, 0, batch, 0, batch)
    fake = model.generator([draws["z"], draws["fake_labels"]], training=True)
    gradients, stats = model._critic_gradients(
        tf.constant(images), tf.constant(labels), fake, draws, 1.0 / batch, 1)
    return {v.path: g for v, g in zip(model.d_variables, gradients)}, stats


def test_class_gradient_share_scales_exactly_the_class_gradients(tiny_model_config,
                                                                 tiny_train_config):
    images, labels = _arrays()
    config = tiny_train_config.replace(diffaug="none", loss_weighting="none")
    model = _model(tiny_model_config, config)
    plain, plain_stats = _critic_gradients(model, images, labels)
    model.train_config = config.replace(class_gradient_share=4.0)
    boosted, stats = _critic_gradients(model, images, labels)

    boost = float(stats["class_boost_d"])
    assert float(plain_stats["class_boost_d"]) == 1.0
    assert 1.0 < boost <= MAX_CLASS_BOOST
    head = model.discriminator.class_head.kernel.path  # only the class losses reach it
    source = model.discriminator.source_head.kernel.path  # only the critic terms reach it
    np.testing.assert_allclose(boosted[head], boost * plain[head], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(boosted[source], plain[source], rtol=1e-5, atol=1e-7)
    # The logged loss is the one the weights follow.
    assert float(stats["d_loss"]) == pytest.approx(
        float(stats["adv_d"]) + boost * (float(stats["ce_real"]) + float(stats["ce_fake_d"])),
        rel=1e-4)


def test_per_term_gradient_norms_show_the_imbalance_and_the_boost_removes_it(
        tiny_model_config, tiny_train_config):
    images, labels = _arrays()
    model = _model(tiny_model_config, tiny_train_config.replace(diffaug="none"))
    norms = loss_term_gradient_norms(model, images, labels)
    d, g = norms["discriminator"], norms["generator"]
    assert set(d) == {"critic", "gradient_penalty", "drift", "class_real", "class_fake",
                      "adversarial_total", "class_total", "class_boost"}
    assert set(g) == {"adversarial", "class_fake", "adversarial_total", "class_total",
                      "class_boost"}
    assert all(np.isfinite(v) and v >= 0 for side in norms.values() for v in side.values())
    assert d["class_boost"] == g["class_boost"] == 1.0  # the paper's plain sum

    model.train_config = model.train_config.replace(class_gradient_share=1.0,
                                                    g_class_gradient_share=1.0)
    boosted = loss_term_gradient_norms(model, images, labels)
    for side in boosted.values():
        effective = side["class_boost"] * side["class_total"]
        assert effective >= 0.999 * side["adversarial_total"] or \
            side["class_boost"] == MAX_CLASS_BOOST
    heads = {id(v) for layer in (model.discriminator.class_head,
                                 model.discriminator.source_head) for v in layer.weights}
    assert not heads & {id(v) for v in shared_discriminator_variables(model.discriminator)}


def test_training_with_a_class_share_and_a_real_only_head(array_source, tiny_model_config,
                                                          tiny_train_config):
    config = tiny_train_config.replace(class_gradient_share=1.0, g_class_gradient_share=0.5,
                                       d_class_on_fakes=False, loss_weighting="none",
                                       diffaug="color")
    model, logs = _fit(array_source, tiny_model_config, config, 2)
    assert model.d_task_weights.task_names == ("ce_real",)
    assert logs["class_boost_d"] >= 1.0 and logs["class_boost_g"] >= 1.0
    assert all(np.isfinite(v) for v in logs.values())
    assert logs["s_ce_fake_d"] == 0.0
    # Without CE_3 the fakes' cross-entropy is still measured, not trained on.
    assert logs["ce_fake_d"] > 0.0


def test_real_only_head_has_no_fake_class_term_in_the_critic_loss(array_source,
                                                                   tiny_model_config,
                                                                   tiny_train_config):
    config = tiny_train_config.replace(d_class_on_fakes=False, loss_weighting="none",
                                       diffaug="none", class_gradient_share=0.0)
    _, logs = _fit(array_source, tiny_model_config, config, 2)
    assert logs["d_loss"] == pytest.approx(logs["adv_d"] + logs["ce_real"], rel=1e-5, abs=1e-5)
