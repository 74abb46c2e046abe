"""The training step of SPEC §4 on the tiny preset: what moves, what is logged, what adds up."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.training.data_stream import make_training_stream, training_examples
from hvitgan_tf.training.gan import METRIC_NAMES, HViTGAN


def _train(source, model_config, train_config, iterations):
    model = HViTGAN(model_config, train_config, source.class_counts())
    model.compile()
    before = {
        "g": [w.numpy().copy() for w in model.generator.trainable_weights],
        "d": [w.numpy().copy() for w in model.discriminator.trainable_weights],
        "ema": [w.numpy().copy() for w in model.ema_generator.weights],
    }
    stream = make_training_stream(
        tf.distribute.get_strategy(),
        training_examples(source, model_config.image_size, train_config.seed),
        batch_size=train_config.batch_size, n_critic=train_config.n_critic)
    history = model.fit(stream, epochs=1, steps_per_epoch=iterations, verbose=0, shuffle=False)
    return model, before, {k: v[-1] for k, v in history.history.items()}


def _changed(before, after):
    return [not np.array_equal(b, a.numpy()) for b, a in zip(before, after)]


def test_temperature_iteration_moves_every_network_and_every_log_temperature(
        array_source, tiny_model_config, tiny_train_config):
    model, before, logs = _train(array_source, tiny_model_config, tiny_train_config, 3)

    assert int(model.iterations_done.numpy()) == 3
    assert int(model.d_optimizer.iterations.numpy()) == 3 * tiny_train_config.n_critic
    assert all(_changed(before["g"], model.generator.trainable_weights))
    assert all(_changed(before["d"], model.discriminator.trainable_weights))
    assert all(_changed(before["ema"], model.ema_generator.weights))
    # The EMA generator lags the live one instead of copying it.
    assert not np.allclose(model.ema_generator.weights[-1].numpy(),
                           model.generator.weights[-1].numpy())

    assert set(METRIC_NAMES) <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    # s_i receive gradients: they leave their initial value 0 (SPEC §4).
    for weights in (model.g_task_weights, model.d_task_weights):
        values = [float(p.numpy()) for p in weights.task_params]
        assert len(values) == len(weights.task_names)
        assert all(abs(v) > 1e-6 for v in values), values
    assert 0.0 <= logs["acc_real"] <= 1.0 and 0.0 <= logs["acc_fake"] <= 1.0
    assert logs["gp"] >= 0.0 and logs["drift"] >= 0.0


def test_none_weighting_is_the_plain_sum_of_the_terms(array_source, tiny_model_config,
                                                     tiny_train_config):
    config = tiny_train_config.replace(loss_weighting="none", diffaug="color")
    model, _, logs = _train(array_source, tiny_model_config, config, 2)
    assert model.g_task_weights.trainable_variables == []
    assert logs["d_loss"] == pytest.approx(logs["adv_d"] + logs["ce_real"] + logs["ce_fake_d"],
                                           rel=1e-5, abs=1e-5)
    assert logs["g_loss"] == pytest.approx(logs["adv_g"] + logs["ce_fake_g"], rel=1e-5,
                                           abs=1e-5)
    # The adversarial critic loss is E[D(x~)] - E[D(x)] + λ GP + ε drift.
    expected = logs["d_fake"] - logs["d_real"] + 10.0 * logs["gp"] + 1e-3 * logs["drift"]
    assert logs["adv_d"] == pytest.approx(expected, rel=1e-4, abs=1e-4)
    assert logs["s_ce_real"] == 0.0


def test_kendall_with_weighted_adversarial_terms_trains_the_extra_weights(
        array_source, tiny_model_config, tiny_train_config):
    config = tiny_train_config.replace(loss_weighting="kendall", weight_adversarial=True,
                                       diffaug="none")
    model, _, logs = _train(array_source, tiny_model_config, config, 2)
    assert model.d_task_weights.task_names == ("adversarial", "ce_real", "ce_fake_d")
    assert model.g_task_weights.task_names == ("adversarial", "ce_fake_g")
    start = np.log(np.e - 1.0)
    moved = [abs(float(p.numpy()) - start) > 1e-6
             for p in model.d_task_weights.task_params + model.g_task_weights.task_params]
    assert all(moved)
    assert all(np.isfinite(v) for v in logs.values())
