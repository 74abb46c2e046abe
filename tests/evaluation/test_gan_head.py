"""``hvitgan_head``: the GAN discriminator's class head as a benchmark classifier, built from a
training run (exactly the GAN's scores before fine-tuning) or from scratch."""
import keras
import numpy as np
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.classifiers import build_classifier
from hvitgan_tf.evaluation.gan_head import (GANHead, build_hvitgan_head, head_for_image_size,
                                            head_from_model_config, head_from_run)
from hvitgan_tf.export.classifier import classifier_feature_model
from hvitgan_tf.models import build_discriminator
from hvitgan_tf.models.config import preset

IMAGES = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def run_head(tiny_run_dir):
    return head_from_run(tiny_run_dir)


def gan_discriminator(head):
    discriminator = build_discriminator(head.discriminator)
    discriminator.set_weights(head.weights)
    return discriminator


def test_head_from_a_run_reproduces_the_gans_class_scores_and_features(run_head, tiny_run_dir):
    assert run_head.pretrained and run_head.image_size == 16
    assert run_head.class_names == ("dab_negative", "dab_positive")
    assert tiny_run_dir in run_head.origin and "iter-00000004" in run_head.origin
    model = build_hvitgan_head((16, 16, 3), 2, run_head)
    discriminator = gan_discriminator(run_head)
    _, logits = discriminator(IMAGES)
    np.testing.assert_allclose(model(IMAGES), keras.ops.softmax(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier_feature_model(model)(IMAGES),
                               discriminator.features(IMAGES), rtol=1e-5, atol=1e-6)
    # The critic's head is frozen and off the path; everything else trains.
    trunk = model.get_layer("features").discriminator
    assert not trunk.source_head.trainable and not trunk.class_head.trainable
    assert len(model.trainable_weights) == len(discriminator.trainable_weights) - 2


def test_other_input_sizes_are_resized_to_the_gans(run_head):
    model = build_hvitgan_head((32, 32, 3), 2, run_head)
    assert model.get_layer("to_gan_size").output.shape[1:3] == (16, 16)
    big = np.repeat(np.repeat(IMAGES, 2, axis=1), 2, axis=2)  # nearest x2: resizes back
    np.testing.assert_allclose(model(big), build_hvitgan_head((16, 16, 3), 2, run_head)(IMAGES),
                               atol=2e-2)


def test_fine_tuning_changes_the_head_but_not_the_critic(run_head):
    keras.utils.set_random_seed(0)
    model = build_hvitgan_head((16, 16, 3), 2, run_head)
    trunk = model.get_layer("features").discriminator
    source_before = [w.numpy().copy() for w in trunk.source_head.weights]
    logits_before = model.get_layer("logits").get_weights()[0].copy()
    labels = (IMAGES.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    # Eager: five steps take less than tracing the transformer's training step.
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  run_eagerly=True)
    losses = model.fit(IMAGES, labels, epochs=6, batch_size=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert not np.allclose(model.get_layer("logits").get_weights()[0], logits_before)
    for before, after in zip(source_before, trunk.source_head.weights):
        np.testing.assert_array_equal(before, after.numpy())


def test_registry_entry_from_a_run_or_a_preset(tiny_run_dir, run_head):
    pretrained = build_classifier("hvitgan_head", (16, 16, 3), 2, pretrained=True,
                                  weights_path=tiny_run_dir)
    np.testing.assert_allclose(pretrained(IMAGES),
                               build_hvitgan_head((16, 16, 3), 2, run_head)(IMAGES), atol=1e-6)
    keras.utils.set_random_seed(1)
    scratch = build_classifier("hvitgan_head", (16, 16, 3), 2, weights_path=tiny_run_dir)
    assert not np.allclose(scratch(IMAGES), pretrained(IMAGES), atol=1e-4)
    assert build_classifier("hvitgan_head", (32, 32, 3), 3).output_shape == (None, 3)
    with pytest.raises(UserError, match="ResNets only"):
        build_classifier("hvitgan_head", (16, 16, 3), 2, width_multiplier=0.5)
    with pytest.raises(UserError, match="run folder"):
        build_classifier("hvitgan_head", (16, 16, 3), 2, pretrained=True)


def test_architecture_sources_and_their_errors(run_head):
    assert head_for_image_size(96, 2).discriminator == preset("pcam96", 2).discriminator
    with pytest.raises(UserError, match="no GAN preset has 48 px"):
        head_for_image_size(48, 2)
    from_config = head_from_model_config(preset("small", 2).to_dict(), ["a", "b"])
    assert not from_config.pretrained and from_config.image_size == 32
    with pytest.raises(UserError, match="has 2 classes but the data has 3"):
        build_hvitgan_head((16, 16, 3), 3, run_head)
    # Without weights a different class count is just a different head.
    scratch = GANHead(run_head.discriminator, origin="x")
    assert build_hvitgan_head((16, 16, 3), 3, scratch).output_shape == (None, 3)
