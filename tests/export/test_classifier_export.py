"""export_classifier round trip and the classifier: feature extractor on its output."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf import imaging
from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.classifiers import build_classifier
from hvitgan_tf.export.classifier import classifier_feature_model, export_classifier
from hvitgan_tf.exported_model import read_classifier_metadata
from hvitgan_tf.metrics.feature_extractors import get_feature_extractor

IMAGES = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A narrow ResNet34 with non-trivial batch-norm statistics, exported once."""
    model = build_classifier("resnet34", (32, 32, 3), 2, width_multiplier=0.125,
                             small_input=True)
    # Random positive values in every weight (kernels, BN scales and running statistics), so
    # that a variable lost in the export would show. (fit() would take a minute to trace.)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.0, weight.shape).astype(np.float32)
                      / np.sqrt(max(1, np.prod(weight.shape[:-1]))))
    path = str(tmp_path_factory.mktemp("export") / "resnet34" / "1")
    export_classifier(model, path, 32, ["normal", "tumour"])
    return model, path


def test_export_round_trip_gives_the_keras_probabilities(exported):
    model, path = exported
    loaded = tf.saved_model.load(path)
    assert {"classify", "features", "serving_default"} <= set(loaded.signatures)
    out = loaded.signatures["classify"](images=tf.constant(IMAGES))
    expected = np.asarray(model(imaging.to_float(IMAGES), training=False))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(out["label"].numpy(), expected.argmax(axis=1))
    assert out["label"].dtype == tf.int32 and out["probabilities"].dtype == tf.float32
    default = loaded.signatures["serving_default"](images=tf.constant(IMAGES[:2]))
    np.testing.assert_allclose(default["probabilities"].numpy(), expected[:2], rtol=1e-4,
                               atol=1e-6)
    metadata = read_classifier_metadata(path)
    assert metadata["class_names"] == ["normal", "tumour"]
    assert metadata["image_size"] == [32, 32] and metadata["feature_dim"] == 64
    with open(os.path.join(path, "assets.extra", "class_names.txt")) as handle:
        assert handle.read() == "normal\ntumour\n"  # as a GAN export writes them


def test_classifier_extractor_reads_the_features_signature(exported):
    model, path = exported
    extractor = get_feature_extractor(f"classifier:{path}", batch_size=2)
    assert extractor.feature_dim == 64 and extractor.input_size == (32, 32)
    expected = np.asarray(classifier_feature_model(model)(imaging.to_float(IMAGES),
                                                          training=False))
    features = extractor(IMAGES)  # uint8, three batches of at most 2
    assert features.shape == (5, 64) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    # [-1, 1] float input is the same images.
    np.testing.assert_array_equal(extractor(imaging.to_float(IMAGES)), features)
    # Other sizes are resized to the signature's 32 x 32 first.
    small = imaging.to_float(IMAGES[:, ::2, ::2])
    resized = imaging.to_uint8(tf.image.resize(small, (32, 32), method="bilinear").numpy())
    np.testing.assert_allclose(extractor(small), extractor(resized), rtol=1e-5, atol=1e-5)
    assert path in extractor.cache_id and extractor.cache_id != f"classifier:{path}:"


def tiny_classifier(num_classes=2):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(features)
    return keras.Model(inputs, outputs, name="tiny")


def test_export_refuses_to_overwrite_unless_asked(tmp_path):
    path = str(tmp_path / "model")
    first = tiny_classifier()
    export_classifier(first, path, 8, ["a", "b"])
    with pytest.raises(UserError, match="already exists"):
        export_classifier(first, path, 8, ["a", "b"])
    export_classifier(tiny_classifier(3), path, 8, ["a", "b", "c"], overwrite=True)
    assert read_classifier_metadata(path)["num_classes"] == 3
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary or retired folders
    with pytest.raises(UserError, match="3 outputs but 2 class names"):
        export_classifier(tiny_classifier(3), str(tmp_path / "other"), 8, ["a", "b"])


def test_classifier_extractor_errors(tmp_path):
    with pytest.raises(UserError, match="not a SavedModel"):
        get_feature_extractor(f"classifier:{tmp_path / 'missing'}")
    with pytest.raises(UserError, match="needs a SavedModel path"):
        get_feature_extractor("classifier")

    class OnlyClassify(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.uint8, name="images")])
        def classify(self, images):
            return {"label": tf.zeros(tf.shape(images)[:1], tf.int32)}

    module = OnlyClassify()
    tf.saved_model.save(module, str(tmp_path / "gan"),
                        signatures={"classify": module.classify})
    with pytest.raises(UserError, match="no 'features' signature.*classify"):
        get_feature_extractor(f"classifier:{tmp_path / 'gan'}")
