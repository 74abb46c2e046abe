"""The built-in glyphs set: deterministic, balanced, and really ten different shapes."""
import numpy as np
import pytest

from hvitgan_tf.data import open_source
from hvitgan_tf.data.glyphs import (CLASS_NAMES, GLYPH_SEED, IMAGE_SIZE, MIN_CONTRAST,
                                    NUM_IMAGES, glyph_images, render_glyph)


@pytest.fixture(scope="module")
def glyphs():
    return open_source("glyphs")


def test_images_are_a_pure_function_of_their_index():
    images, labels = glyph_images()
    assert images.shape == (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [NUM_IMAGES // 10] * 10
    for i in (0, 17, 5999):
        again = render_glyph(int(labels[i]), np.random.default_rng([GLYPH_SEED, i]))
        assert np.array_equal(images[i], again)
    assert not images.flags.writeable  # the cached arrays cannot be changed by a caller


def test_images_vary_in_the_promised_ways():
    images, labels = glyph_images()
    subset = images[:500].astype(np.float32)
    backgrounds = np.median(subset.reshape(500, -1, 3), axis=1).mean(axis=1)
    darkest = subset.min(axis=(1, 2, 3))
    # Background grey and stroke colour both vary, with the promised contrast.
    assert backgrounds.std() > 10 and np.all(backgrounds - darkest >= MIN_CONTRAST - 30)
    strokes = subset.reshape(500, -1, 3)[np.arange(500), subset.sum(-1).reshape(500, -1)
                                         .argmin(1)]
    assert np.ptp(strokes[:, 0] - strokes[:, 2]) > 50  # coloured, not only grey strokes
    # Two renderings of one digit differ (font, size, position, rotation)...
    zeros = subset[labels[:500] == 0]
    assert np.mean(np.abs(zeros[0] - zeros[1])) > 5
    # ...and the ink covers a plausible part of the image, never nothing.
    ink = (backgrounds[:, None, None] - subset.mean(-1)) > MIN_CONTRAST / 2
    assert 0.03 < ink.mean() < 0.4 and ink.reshape(500, -1).sum(1).min() > 10


def test_classes_are_separable_from_the_pixels(glyphs):
    """Nearest class mean of the ink masks beats chance by far: the labels mean something."""
    images, labels = glyph_images()
    ink = (255.0 - images.mean(-1)).reshape(len(images), -1)
    ink = ink - ink.mean(1, keepdims=True)
    train, test = slice(0, 5000), slice(5000, None)
    means = np.stack([ink[train][labels[train] == c].mean(0) for c in range(10)])
    predicted = np.argmin(((ink[test][:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == labels[test]) > 0.4  # chance: 0.1


def test_glyphs_is_a_source_like_any_other(glyphs):
    assert glyphs.class_names == list(CLASS_NAMES) and glyphs.num_classes == 10
    assert glyphs.native_image_size == IMAGE_SIZE
    assert [glyphs.num_examples(s) for s in glyphs.split_names] == [4800, 600, 600]
    assert all(c == 480 for c in glyphs.class_counts("train"))  # stratified
    images, labels = next(iter(glyphs.batches("validation", 32, 64)))
    assert images.shape == (64, 32, 32, 3) and float(images.numpy().min()) >= -1.0
    info = glyphs.describe()
    assert "matplotlib fonts" in info["description"]
    assert info["splits"]["train"]["class_counts"] == dict(zip(CLASS_NAMES, [480] * 10))
