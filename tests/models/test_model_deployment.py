"""The networks where they will run: an exported SavedModel and a MirroredStrategy replica step."""
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from model_inputs import noise_and_labels, random_images


@pytest.mark.slow
def test_exported_savedmodel_reproduces_generator_scores_and_features(
        tiny, tiny_generator, tiny_discriminator, tmp_path):
    cfg = tiny.generator
    size = tiny.image_size
    archive = keras.export.ExportArchive()
    archive.track(tiny_generator)
    archive.track(tiny_discriminator)
    image_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
    archive.add_endpoint(
        "generate",
        tf.function(lambda z, labels: {"images": tiny_generator([z, labels], training=False)},
                    input_signature=[tf.TensorSpec([None, cfg.latent_dim], tf.float32, "z"),
                                     tf.TensorSpec([None], tf.int32, "labels")]))

    def discriminate(images):
        outputs = tiny_discriminator(images, training=False, return_features=True)
        return dict(zip(("source", "logits", "features"), outputs))

    archive.add_endpoint("discriminate", tf.function(discriminate, input_signature=[image_spec]))
    archive.write_out(str(tmp_path / "1"), verbose=False)

    loaded = tf.saved_model.load(str(tmp_path / "1"))
    z, labels = noise_and_labels(cfg, 3)
    np.testing.assert_allclose(loaded.generate(z, labels)["images"],
                               tiny_generator([z, labels]), atol=1e-5)
    images = random_images(tiny.discriminator, 2)
    scored = loaded.discriminate(images)
    source, logits = tiny_discriminator(images)
    np.testing.assert_allclose(scored["source"], source, atol=1e-5)
    np.testing.assert_allclose(scored["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(scored["features"], tiny_discriminator.features(images),
                               atol=1e-5)
    assert loaded.discriminate(images[:1])["features"].shape == (1, tiny.discriminator.embed_dim)


# Runs in a fresh interpreter: the two logical CPU devices must exist before TF initialises.
MIRRORED_STEP = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from hvitgan_tf.models import build_discriminator, build_generator, preset

    cfg = preset("tiny", num_classes=3)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        G = build_generator(cfg.generator)
        D = build_discriminator(cfg.discriminator)
    # Keras 3 wraps each tf.Variable; the wrapped one must be mirrored across both devices.
    assert all(isinstance(v.value, tf.distribute.DistributedValues)
               for v in G.weights + D.weights), type(G.weights[0].value)

    @tf.function
    def replica_step(z, labels, real):
        # The second-order part of a critic step: a WGAN-GP penalty at points between real and
        # generated images (one D call keeps the traced graph, and the test, small).
        fake = G([z, labels], training=True)
        alpha = tf.random.uniform([tf.shape(real)[0], 1, 1, 1])
        mixed = alpha * real + (1 - alpha) * fake
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(mixed)
                source, logits = D(mixed, training=True)
                total = tf.reduce_sum(source)
            grad = inner.gradient(total, mixed)
            norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
            loss = (tf.reduce_mean(source) + 10.0 * tf.reduce_mean(tf.square(norm - 1.0))
                    + tf.reduce_mean(logits))
        grads = outer.gradient(loss, D.trainable_variables)
        missing = sum(int(g is None) for g in grads)
        return loss, missing, tf.linalg.global_norm([g for g in grads if g is not None])

    rng = np.random.default_rng(0)
    z = tf.constant(rng.standard_normal((2, cfg.latent_dim)), tf.float32)
    labels = tf.constant([0, 2], tf.int32)
    real = tf.constant(rng.uniform(-1, 1, (2, 16, 16, 3)), tf.float32)
    losses, missing, norms = strategy.run(replica_step, args=(z, labels, real))
    for value in strategy.experimental_local_results(losses) + \\
            strategy.experimental_local_results(norms):
        assert np.isfinite(value.numpy()), value
    assert max(int(m) for m in strategy.experimental_local_results(missing)) == 0
    print("replicas", strategy.num_replicas_in_sync)
""")


@pytest.mark.slow
def test_mirrored_strategy_critic_step_with_gradient_penalty():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", MIRRORED_STEP], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
