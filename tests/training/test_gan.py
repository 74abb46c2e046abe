"""The training step of docs/method.md §4 on the tiny preset: what moves, what is logged, what adds
up."""
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
    # s_i receive gradients: they leave their initial value 0 (docs/method.md §4).
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


@pytest.fixture
def mixed_bfloat16():
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("weighting", ["temperature", "kendall"])
def test_mixed_bfloat16_iterations_train_with_float32_weights_and_losses(
        mixed_bfloat16, array_source, tiny_model_config, tiny_train_config, weighting):
    config = tiny_train_config.replace(mixed_precision=True, loss_weighting=weighting,
                                       diffaug="color")
    model, before, logs = _train(array_source, tiny_model_config, config, 2)
    assert model.generator.compute_dtype == "bfloat16"
    assert all(w.dtype == "float32" for w in model.generator.weights
               + model.discriminator.weights + model.d_task_weights.weights)
    assert all(_changed(before["g"], model.generator.trainable_weights))
    assert all(_changed(before["d"], model.discriminator.trainable_weights))
    assert all(np.isfinite(v) for v in logs.values())
    start = 0.0 if weighting == "temperature" else np.log(np.e - 1.0)
    assert all(abs(float(p.numpy()) - start) > 1e-6 for p in model.d_task_weights.task_params)
    # The generator's output and both heads stay float32 (docs/method.md §2, §3).
    z = tf.zeros([2, tiny_model_config.latent_dim])
    images = model.generator([z, tf.constant([0, 1])])
    source, logits = model.discriminator(images)
    assert (images.dtype, source.dtype, logits.dtype) == (tf.float32,) * 3


def test_an_xla_compiled_iteration_computes_what_the_graph_iteration_computes(
        array_source, tiny_model_config, tiny_train_config):
    # `hvitgan-tf train` compiles the step with XLA by default (--jit).
    config = tiny_train_config.replace(batch_size=2, n_critic=1, diffaug="color")
    results, initial = [], None
    for jit in (False, True):
        model = HViTGAN(tiny_model_config, config.replace(jit=jit), array_source.class_counts())
        model.compile(jit_compile=jit)
        stream = make_training_stream(
            tf.distribute.get_strategy(),
            training_examples(array_source, tiny_model_config.image_size, config.seed),
            batch_size=config.batch_size, n_critic=config.n_critic)
        if initial is None:
            initial = model.get_weights()
        else:
            model.set_weights(initial)
        history = model.fit(stream, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        results.append((model.get_weights(), {k: v[-1] for k, v in history.history.items()}))
    (plain, plain_logs), (xla, xla_logs) = results
    # Same random numbers (integer Philox draws, int32 seeds), so only rounding differs.
    for key in METRIC_NAMES:
        assert xla_logs[key] == pytest.approx(plain_logs[key], rel=1e-4, abs=1e-5), key
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(plain, xla)) < 1e-4


def test_ema_generator_follows_a_short_run_instead_of_staying_near_its_start(
        array_source, tiny_model_config, tiny_train_config):
    """decay_t = min(ema_decay, (1 + t) / (10 + t)): a plain 0.999 would leave a 165-iteration
    demo run's exported generator 85 % initialisation; with the warm-up the EMA averages
    roughly the last (10 + t) / 9 iterations (about 20 at t = 165)."""
    model, before, _ = _train(array_source, tiny_model_config, tiny_train_config, 6)
    start = np.concatenate([w.ravel() for w in before["ema"]])
    live = np.concatenate([w.numpy().ravel() for w in model.generator.weights])
    ema = np.concatenate([w.numpy().ravel() for w in model.ema_generator.weights])
    travelled = np.linalg.norm(live - start)
    assert travelled > 0
    # Six steps of 1 - decay_t = 0.9, 0.82, 0.75, 0.69, 0.64, 0.6: the EMA is at most a few
    # tenths of the way back towards the start, where a fixed 0.999 would sit at 99.4 %.
    assert np.linalg.norm(ema - live) < 0.35 * travelled


def test_the_training_noise_stays_finite_at_the_top_of_the_uniform_range():
    """The top 24-bit draw used to round to u = 1 in float32, and ndtri(1) = inf: the demo run
    with seed 0 diverged at iteration 2,732 because of one such element in its generator
    update's noise. That draw must now give a finite z, and every other value stays where it
    was, (bits + 0.5) / 2**24."""
    import types

    from hvitgan_tf.training import gan as gan_module
    from hvitgan_tf.training.config import TrainConfig

    top = 2 ** gan_module._UNIFORM_BITS - 1
    bits = tf.constant([0, 1, 12345, top - 1, top], tf.int32)
    unit = gan_module._bits_to_unit(bits).numpy()
    assert np.all(unit > 0) and np.all(unit < 1)
    assert np.all(np.isfinite(tf.math.ndtri(unit).numpy()))
    expected = (bits.numpy()[:-1].astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -24)
    np.testing.assert_array_equal(unit[:-1], expected)

    # The draw that broke the run: iteration 2,731 (0-based), generator update (micro-step
    # n_critic = 2), batch 16 x latent 128.
    stand_in = types.SimpleNamespace(train_config=TrainConfig(seed=0))
    seed = HViTGAN._seed(stand_in, tf.constant(2731), gan_module._NOISE, 2)
    raw = tf.random.stateless_uniform([16, 128], seed=seed, minval=0,
                                      maxval=2 ** gan_module._UNIFORM_BITS, dtype=tf.int32,
                                      alg="philox").numpy()
    assert raw[14, 69] == top  # the case itself, so this test keeps testing it
    z = tf.math.ndtri(gan_module._unit_uniform([16, 128], seed)).numpy()
    assert np.all(np.isfinite(z)) and np.abs(z).max() < 6
