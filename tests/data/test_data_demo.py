"""The built-in demo source and the shared pipeline (dtype, range, order, batching)."""
import numpy as np
import pytest
import tensorflow as tf
from skimage import color, data

from hvitgan_tf.data import DataError, open_source, to_model_input
from hvitgan_tf.data.demo import (DAB_PIXEL_THRESHOLD, PATCH_SIZE, POSITIVE_AREA_FRACTION,
                                  STRIDE, demo_patches)


@pytest.fixture(scope="module")
def demo():
    return open_source("demo")


def test_patches_follow_the_documented_grid_and_labelling_rule():
    patches, labels, _ = demo_patches()
    image = data.immunohistochemistry()
    grid = (image.shape[0] - PATCH_SIZE) // STRIDE + 1
    assert patches.shape == (grid * grid, PATCH_SIZE, PATCH_SIZE, 3) == (900, 48, 48, 3)
    for k in (0, 31, 450, 899):
        row, col = divmod(k, grid)
        window = image[row * STRIDE:row * STRIDE + PATCH_SIZE,
                       col * STRIDE:col * STRIDE + PATCH_SIZE]
        assert np.array_equal(patches[k], window)
        # rgb2hed is per pixel, so the patch's own deconvolution gives the same rule.
        stained = color.rgb2hed(window)[..., 2] > DAB_PIXEL_THRESHOLD
        assert labels[k] == int(stained.mean() >= POSITIVE_AREA_FRACTION)
    # The counts the docstring (and README) state.
    assert np.bincount(labels).tolist() == [426, 474]


def test_demo_describes_itself(demo):
    assert demo.class_names == ["dab_negative", "dab_positive"]
    assert demo.num_classes == 2 and demo.native_image_size == 48
    assert demo.split_names == ("train", "validation", "test")
    sizes = [demo.num_examples(s) for s in demo.split_names]
    assert sizes == [720, 90, 90]
    totals = np.sum([demo.class_counts(s) for s in demo.split_names], axis=0)
    assert totals.tolist() == [426, 474]
    info = demo.describe()
    assert info["splits"]["train"]["class_counts"] == dict(zip(demo.class_names,
                                                               demo.class_counts("train")))


def test_examples_are_float_images_in_range_with_int32_labels(demo):
    dataset = demo.examples("validation", 32)
    assert dataset.element_spec == (tf.TensorSpec([32, 32, 3], tf.float32),
                                    tf.TensorSpec([], tf.int32))
    assert int(dataset.cardinality()) == 90
    images, labels = zip(*dataset.as_numpy_iterator())
    images, labels = np.stack(images), np.array(labels)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() < -0.5 and images.max() > 0.5  # really spread over the range
    assert np.bincount(labels).tolist() == demo.class_counts("validation")


def test_native_size_is_served_without_resampling(demo):
    patches, labels, _ = demo_patches()
    index = demo.split_index("test")
    image, label = next(iter(demo.examples("test", 48)))
    first = index.positions[0]
    np.testing.assert_allclose(image.numpy(), patches[first] / 127.5 - 1.0, atol=1e-6)
    assert int(label) == labels[first]


def test_unshuffled_order_is_the_stored_order(demo):
    index = demo.split_index("validation")
    labels = [int(label) for _, label in demo.raw_examples("validation")]
    assert labels == index.labels.tolist()


def _fingerprint(dataset, count=40):
    return [(int(label), float(image[5, 5, 0])) for image, label in dataset.take(count)]


def test_shuffle_is_seeded(demo):
    a = _fingerprint(demo.examples("train", 16, shuffle=True, seed=7))
    b = _fingerprint(demo.examples("train", 16, shuffle=True, seed=7))
    c = _fingerprint(demo.examples("train", 16, shuffle=True, seed=8))
    plain = _fingerprint(demo.examples("train", 16))
    assert a == b
    assert a != c and a != plain


def test_batches_and_repeat(demo):
    batches = demo.batches("validation", 16, 32, drop_remainder=True)
    shapes = [(tuple(x.shape), tuple(y.shape)) for x, y in batches]
    assert shapes == [((32, 16, 16, 3), (32,))] * 2  # 90 // 32 full batches
    remainder = [int(y.shape[0]) for _, y in demo.batches("validation", 16, 32)]
    assert remainder == [32, 32, 26]
    endless = demo.batches("validation", 16, 32, shuffle=True, seed=1, repeat=True)
    assert len(list(endless.take(7))) == 7  # more than one epoch


def test_subset_is_stratified_reproducible_and_train_only():
    a = open_source("demo", limit=101, seed=3)
    b = open_source("demo", limit=101, seed=3)
    c = open_source("demo", limit=101, seed=4)
    full = open_source("demo")
    assert a.num_examples("train") == 101
    assert np.array_equal(a.split_index("train").positions, b.split_index("train").positions)
    assert not np.array_equal(a.split_index("train").positions,
                              c.split_index("train").positions)
    expected = 101 * np.array(full.class_counts("train")) / full.num_examples("train")
    assert np.all(np.abs(np.array(a.class_counts("train")) - expected) <= 1)
    # Validation and test are used whole and do not depend on the subset seed.
    for split in ("validation", "test"):
        assert np.array_equal(c.split_index(split).positions, full.split_index(split).positions)
    subset = set(a.split_index("train").positions.tolist())
    assert subset <= set(full.split_index("train").positions.tolist())


def test_fraction_subset():
    source = open_source("demo", fraction=0.25, seed=0)
    assert source.num_examples("train") == 180
    assert sum(source.class_counts("train")) == 180
    assert source.describe()["subset"] == {"fraction": 0.25, "limit": None, "seed": 0,
                                           "applies_to": "train"}


def test_split_options():
    other = open_source("demo", split_seed=1)
    assert not np.array_equal(other.split_index("test").positions,
                              open_source("demo").split_index("test").positions)
    wide = open_source("demo", split_fractions=(0.6, 0.2, 0.2))
    assert [wide.num_examples(s) for s in wide.split_names] == [540, 180, 180]
    assert wide.class_counts("test") == [85, 95]  # round(0.2 * 426), round(0.2 * 474)


@pytest.mark.parametrize("kwargs, message", [
    (dict(limit=721), "larger than the training split"),
    (dict(limit=1), "number of classes"),
    (dict(limit=10, fraction=0.5), "not both"),
    (dict(data_dir="/tmp"), "only applies to tfds"),
    (dict(split_fractions=(0.5, 0.5)), "split_fractions"),
])
def test_bad_options_are_user_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        open_source("demo", **kwargs)


def test_unknown_split(demo):
    with pytest.raises(DataError, match="unknown split 'valid'"):
        demo.examples("valid", 32)


def test_to_model_input_crops_and_resizes():
    # A 20x40 image: the centre 20x20 square is kept, then resized.
    image = np.zeros([20, 40, 3], np.uint8)
    image[:, 10:30] = 255
    out = to_model_input(image, 8).numpy()
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out, 1.0, atol=1e-5)  # only the white centre survives
    batch = to_model_input(np.zeros([2, 12, 12, 3], np.uint8), 4)
    assert batch.shape == (2, 4, 4, 3) and float(batch.numpy().max()) == -1.0
