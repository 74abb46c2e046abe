"""Image conversion, the extractor registry, and the InceptionV3 extractor with test weights.

No real ImageNet weights exist on this machine (and nothing may be downloaded): the tests write
a randomly initialised InceptionV3's weights in both formats Keras reads, and check that the
extractor loads them (two separately built extractors agree only if both loaded the file).
"""
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf import imaging
from hvitgan_tf.errors import UserError
from hvitgan_tf.metrics import imagenet_weights
from hvitgan_tf.metrics.feature_extractors import (as_float_images,
                                                      available_feature_extractors,
                                                      get_feature_extractor, iter_image_batches)

# [-1, 1] floats that are exactly representable as uint8, so both formats are the same images.
IMAGES = imaging.to_float(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3),
                                                            dtype=np.uint8))


def test_images_are_converted_from_either_format():
    u8 = imaging.to_uint8(IMAGES)
    np.testing.assert_array_equal(as_float_images(u8), imaging.to_float(u8))
    np.testing.assert_array_equal(as_float_images(IMAGES), IMAGES)
    assert as_float_images(IMAGES.astype(np.float64)).dtype == np.float32
    # Slight overshoot (bicubic ringing) is clipped, not rejected.
    assert as_float_images(IMAGES * 1.02).max() == 1.0
    with pytest.raises(UserError, match=r"\[-1, 1\].*uint8"):
        as_float_images(u8.astype(np.float32))  # 0-255 values in a float array
    with pytest.raises(UserError, match="RGB images"):
        as_float_images(IMAGES[0])
    with pytest.raises(UserError, match="dtype int32"):
        as_float_images(u8.astype(np.int32))


def test_image_batches_from_arrays_datasets_and_dicts():
    labels = np.arange(3)
    assert [b.shape[0] for b in iter_image_batches(IMAGES, batch_size=2)] == [2, 1]
    dataset = tf.data.Dataset.from_tensor_slices((IMAGES, labels)).batch(2)
    np.testing.assert_array_equal(np.concatenate(list(iter_image_batches(dataset))), IMAGES)
    unbatched = tf.data.Dataset.from_tensor_slices({"image": IMAGES, "label": labels})
    assert [b.shape for b in iter_image_batches(unbatched)] == [(1, 32, 32, 3)] * 3
    with pytest.raises(UserError, match="without 'image'"):
        list(iter_image_batches([{"pixels": IMAGES}]))


def test_registry_names_and_errors():
    assert set(available_feature_extractors()) >= {"inception", "classifier"}
    with pytest.raises(UserError, match="unknown feature extractor 'vgg'.*inception"):
        get_feature_extractor("vgg")


def test_inception_without_weights_fails_clearly_and_downloads_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserError) as error:
        get_feature_extractor("inception")
    message = str(error.value)
    assert imagenet_weights.INCEPTION_V3.url in message
    assert os.path.join(str(tmp_path), "models", imagenet_weights.INCEPTION_V3.file_name) \
        in message
    assert "cannot download" in message and "inception_weights=PATH" in message
    assert not os.path.exists(tmp_path / "models")  # nothing fetched or created
    with pytest.raises(UserError, match="does not exist"):
        get_feature_extractor("inception", inception_weights=str(tmp_path / "nope.h5"))


@pytest.fixture(scope="module")
def inception_files(tmp_path_factory):
    """A random InceptionV3 (no top, average pool) and its weights in Keras 3's
    ``.weights.h5`` format and in the legacy HDF5 layout of Keras's published files."""
    folder = tmp_path_factory.mktemp("inception")
    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                           input_shape=(299, 299, 3))
    keras_file = str(folder / "random_inception.weights.h5")
    model.save_weights(keras_file)
    # Keras's download cache holds the legacy format; the writer for it is internal to Keras.
    from keras.src.legacy.saving import legacy_h5_format

    cache_dir = folder / "keras_home" / "models"
    cache_dir.mkdir(parents=True)
    with h5py.File(cache_dir / imagenet_weights.INCEPTION_V3.file_name, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    expected = np.asarray(model(tf.image.resize(IMAGES[:2], (299, 299)), training=False))
    return keras_file, str(folder / "keras_home"), expected


def test_inception_extractor_with_an_explicit_weights_file(inception_files, monkeypatch,
                                                           tmp_path):
    keras_file, keras_home, expected = inception_files
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache: the path must be used
    extractor = get_feature_extractor("inception", inception_weights=keras_file, batch_size=1)
    assert extractor.feature_dim == 2048
    features = extractor(IMAGES[:2])  # two batches of one
    assert features.shape == (2, 2048) and features.dtype == np.float32
    # Resized to 299 and fed unchanged in [-1, 1], as the model above was.
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert extractor.cache_id.startswith("inception_v3:")
    # The ":PATH" form of the name passes a weights file too.
    with pytest.raises(UserError, match="elsewhere.h5 does not exist"):
        get_feature_extractor(f"inception:{tmp_path / 'elsewhere.h5'}")


def test_inception_extractor_finds_the_file_in_keras_cache(inception_files, monkeypatch):
    _, keras_home, expected = inception_files
    monkeypatch.setenv("KERAS_HOME", keras_home)
    extractor = get_feature_extractor("inception")
    assert extractor.weights_path.startswith(keras_home)
    # uint8 input: the same images as the float ones the expected features came from.
    np.testing.assert_allclose(extractor(imaging.to_uint8(IMAGES[:2])), expected, rtol=1e-4,
                               atol=1e-5)
