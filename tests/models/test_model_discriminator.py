"""The discriminator (docs/method.md §3): outputs, features, gradient penalty, serialisation,
precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import Discriminator, build_discriminator, preset
from model_inputs import random_images


@pytest.mark.parametrize("name, batch", [("tiny", 3), ("small", 2), ("pcam96", 1)])
def test_discriminator_outputs_and_features(name, batch):
    cfg = preset(name, num_classes=3).discriminator
    discriminator = build_discriminator(cfg)
    images = random_images(cfg, batch)
    source, logits = discriminator(images, training=False)
    assert source.shape == (batch, 1) and logits.shape == (batch, 3)
    assert source.dtype == logits.dtype == tf.float32
    features = discriminator.features(images)
    assert features.shape == (batch, cfg.embed_dim) and features.dtype == tf.float32
    # The features are exactly what the class head reads.
    np.testing.assert_allclose(discriminator.class_head(features), logits, atol=1e-5)
    together = discriminator(images, return_features=True)
    for got, want in zip(together, (source, logits, features)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_discriminator_under_tf_function_with_unknown_batch(tiny, tiny_discriminator):
    size = tiny.image_size
    spec = [tf.TensorSpec([None, size, size, 3], tf.float32)]
    score = tf.function(lambda x: tiny_discriminator(x, training=False), input_signature=spec)
    features = tf.function(tiny_discriminator.features, input_signature=spec)
    images = random_images(tiny.discriminator, 3)
    for got, want in zip(score(images), tiny_discriminator(images)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert features(images[:1]).shape == (1, tiny.discriminator.embed_dim)


def _penalty(discriminator, images):
    """docs/method.md §4's gradient penalty: (||grad_x D_s(x)||_2 - 1)^2, norm as sqrt(sum g^2 +
    1e-12)."""
    with tf.GradientTape() as inner:
        inner.watch(images)
        source, _ = discriminator(images, training=True)
        total = tf.reduce_sum(source)
    grad = inner.gradient(total, images)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


def test_second_order_gradient_of_the_penalty_reaches_every_weight(tiny, tiny_discriminator):
    images = tf.constant(random_images(tiny.discriminator, 2))
    variables = tiny_discriminator.trainable_variables
    with tf.GradientTape() as outer:
        penalty = _penalty(tiny_discriminator, images)
    grads = outer.gradient(penalty, variables)
    by_path = {v.path: g for v, g in zip(variables, grads)}
    # The class head does not touch D_s; the source head's bias and the final LN's offset shift
    # D_s by a constant: none of them can change the input gradient. Every other weight must get
    # a non-zero gradient.
    unrelated = {"discriminator/class_head/kernel", "discriminator/class_head/bias",
                 "discriminator/source_head/bias", "discriminator/final_norm/beta"}
    assert {p for p, g in by_path.items() if g is None} <= unrelated
    assert not [p for p, g in by_path.items()
                if p not in unrelated and not np.any(np.asarray(g))]


def test_penalty_gradient_matches_finite_differences(tiny, tiny_discriminator):
    # A wrong or silently stopped second derivative shows up here (float64 copy of tiny D):
    # with keras.layers.LayerNormalization inside, this was off by several percent.
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float64")
    try:
        d64 = build_discriminator(tiny.discriminator)
    finally:
        keras.mixed_precision.set_global_policy(before)
    assert {v.dtype for v in d64.weights} == {"float64"}
    assert d64.stages[0].encoders[0].compute_dtype == "float64"
    d64.set_weights([w.astype("float64") for w in tiny_discriminator.get_weights()])
    images = tf.constant(random_images(tiny.discriminator, 2).astype("float64"))
    variables = d64.trainable_variables
    with tf.GradientTape() as tape:
        penalty = _penalty(d64, images)
    grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
             for v, g in zip(variables, tape.gradient(penalty, variables))]
    rng = np.random.default_rng(0)
    direction = [rng.standard_normal(v.shape) for v in variables]
    analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, direction))
    original = [v.numpy() for v in variables]
    eps = 1e-6  # central differences: the error shrinks as eps^2 down to ~1e-7 here
    values = []
    for sign in (1, -1):
        for v, w, d in zip(variables, original, direction):
            v.assign(w + sign * eps * d)
        values.append(float(_penalty(d64, images)))
    numeric = (values[0] - values[1]) / (2 * eps)
    # 1e-5: the wrong second derivative this guards against was off by per cent; on a busy
    # machine thread-parallel reductions moved the two sides apart by 2.6e-6 once.
    assert analytic == pytest.approx(numeric, rel=1e-5)


def test_discriminator_round_trips_through_config_and_keras_file(tiny, tiny_discriminator,
                                                                  tmp_path):
    images = random_images(tiny.discriminator, 2)
    expected = [np.asarray(t) for t in tiny_discriminator(images)]

    clone = Discriminator.from_config(tiny_discriminator.get_config())
    assert clone.config == tiny.discriminator
    clone.build((None, tiny.image_size, tiny.image_size, 3))
    clone.set_weights(tiny_discriminator.get_weights())
    for got, want in zip(clone(images), expected):
        np.testing.assert_array_equal(got, want)

    path = tmp_path / "discriminator.keras"
    tiny_discriminator.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Discriminator)
    for got, want in zip(loaded(images), expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(loaded.features(images), tiny_discriminator.features(images))


def test_discriminator_under_mixed_bfloat16(tiny, mixed_bfloat16):
    discriminator = build_discriminator(tiny.discriminator)
    assert discriminator.stages[0].encoders[0].compute_dtype == "bfloat16"
    images = tf.constant(random_images(tiny.discriminator, 2))
    variables = discriminator.trainable_variables
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(images)
            source, logits = discriminator(images, training=True)
            total = tf.reduce_sum(source)
        grad = tf.cast(inner.gradient(total, images), tf.float32)
        loss = tf.reduce_mean(tf.square(tf.norm(tf.reshape(grad, (2, -1)), axis=1) - 1))
        loss += tf.reduce_mean(logits)
    assert source.dtype == logits.dtype == tf.float32
    assert discriminator.features(images).dtype == tf.float32
    grads = outer.gradient(loss, variables)
    assert not [v.path for v, g in zip(variables, grads)
                if g is None and v.path not in ("discriminator/source_head/bias",
                                                "discriminator/final_norm/beta")]
