"""folder:DIR — class sub-folders of PNG / JPEG / TIFF, checked when opened."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data_writers import encode, write_class_folder, write_image
from hvitgan_tf.data import DataError, open_source


def _raw_by_path(source, split):
    """{path: uint8 image} of a split, matched through the stored positions."""
    index = source.split_index(split)
    images = [image for image, _ in source.raw_examples(split).as_numpy_iterator()]
    return {source._paths[p]: image for p, image in zip(index.positions, images)}


def test_formats_and_modes_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((16, 16), 7, np.uint8)])
    gray16 = (rng.integers(0, 256, (16, 16)) * 257).astype(np.uint16)
    files = {
        "a/rgb.png": (rgb, rgb),
        "a/gray.png": (gray, np.repeat(gray[..., None], 3, -1)),
        "a/rgba.png": (rgba, rgb),
        "a/photo.TIF": (rgb, rgb),
        "b/gray16.png": (gray16, np.repeat((gray16 // 257).astype(np.uint8)[..., None], 3, -1)),
        "b/gray.tiff": (gray, np.repeat(gray[..., None], 3, -1)),
        "b/photo.jpg": (rgb, None),  # lossy: compared with Pillow's decode below
        "b/photo2.jpeg": (gray, None),
    }
    for name, (array, _) in files.items():
        write_image(str(tmp_path / name), array)
    source = open_source(f"folder:{tmp_path}", split_fractions=(1, 0, 0))
    assert source.class_names == ["a", "b"] and source.class_counts("train") == [4, 4]
    assert source.native_image_size == 16
    decoded = _raw_by_path(source, "train")
    for name, (_, expected) in files.items():
        image = decoded[str(tmp_path / name)]
        assert image.shape == (16, 16, 3) and image.dtype == np.uint8
        if expected is not None:
            assert np.array_equal(image, expected), name
        else:  # TensorFlow and Pillow upsample JPEG chroma slightly differently
            pillow = np.asarray(Image.open(tmp_path / name).convert("RGB"), dtype=int)
            difference = np.abs(image.astype(int) - pillow)
            assert difference.mean() < 2 and difference.max() <= 8, name
    images = np.stack([x for x, _ in source.examples("train", 8).as_numpy_iterator()])
    assert images.shape == (8, 8, 8, 3) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1


def test_wrong_sizes_are_resized_and_native_size_is_unknown(tmp_path):
    write_class_folder(str(tmp_path), per_class=3, size=16)
    write_image(str(tmp_path / "benign" / "big.png"), np.zeros((40, 30, 3), np.uint8))
    source = open_source(f"folder:{tmp_path}")
    assert source.native_image_size is None
    sizes = {tuple(image.shape) for split in source.split_names
             for image, _ in source.raw_examples(split)}
    assert sizes == {(16, 16, 3), (40, 30, 3)}
    for split in source.split_names:
        for image, label in source.examples(split, 24):
            assert image.shape == (24, 24, 3) and label.dtype == tf.int32


def test_side_files_hidden_files_and_nesting(tmp_path):
    write_class_folder(str(tmp_path), per_class=3)
    (tmp_path / "manifest.csv").write_text("id,class\n")
    (tmp_path / "benign" / "notes.txt").write_text("ignored")
    (tmp_path / "benign" / ".hidden.png").write_bytes(b"garbage")
    (tmp_path / ".cache").mkdir()
    write_image(str(tmp_path / "malignant" / "batch2" / "x.png"), np.zeros((16, 16, 3), np.uint8))
    source = open_source(f"folder:{tmp_path}", split_fractions=(1, 0, 0))
    assert source.class_names == ["benign", "malignant"]
    assert source.class_counts("train") == [3, 4]


def test_corrupt_and_truncated_files_are_named(tmp_path):
    write_class_folder(str(tmp_path), per_class=4)
    broken = tmp_path / "benign" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    photo = encode(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8),
                   "JPEG", quality=95)
    truncated = tmp_path / "malignant" / "cut.jpg"
    truncated.write_bytes(photo[: len(photo) // 2])
    with pytest.raises(DataError) as error:
        open_source(f"folder:{tmp_path}")
    message = str(error.value)
    assert str(broken) in message and str(truncated) in message and "--skip-bad" in message


def test_skip_bad_warns_counts_and_leaves_them_out(tmp_path, caplog):
    write_class_folder(str(tmp_path), per_class=4)
    png = encode(np.zeros((16, 16, 3), np.uint8), "PNG")
    (tmp_path / "benign" / "cut.png").write_bytes(png[:-20])
    (tmp_path / "malignant" / "empty.tif").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="hvitgan_tf.data"):
        source = open_source(f"folder:{tmp_path}", skip_bad=True)
    assert [os.path.basename(path) for path, _ in source.skipped] == ["cut.png", "empty.tif"]
    assert "skipped 2 bad image file(s) of 10" in caplog.text
    assert sum(source.num_examples(s) for s in source.split_names) == 8
    assert len(source.describe()["skipped"]) == 2
    assert len(list(source.examples("train", 16))) == source.num_examples("train")


def test_a_class_left_empty_by_skipping_is_an_error(tmp_path):
    write_class_folder(str(tmp_path), per_class=2)
    write_image(str(tmp_path / "third" / "ok.png"), np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "third" / "ok.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="third have no examples"):
        open_source(f"folder:{tmp_path}", skip_bad=True)


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="is empty: no class sub-folders"):
        open_source(f"folder:{tmp_path}")
    write_image(str(tmp_path / "loose.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="1 images directly inside"):
        open_source(f"folder:{tmp_path}")
    write_class_folder(str(tmp_path), per_class=2, classes=("only",))
    with pytest.raises(DataError, match="only one class folder \\(only\\)"):
        open_source(f"folder:{tmp_path}")
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "readme.md").write_text("no images here")
    with pytest.raises(DataError, match=f"without images .*{tmp_path / 'second'}"):
        open_source(f"folder:{tmp_path}")


def test_split_is_stratified_and_seeded(tmp_path):
    write_class_folder(str(tmp_path), per_class=20, size=8)
    source = open_source(f"folder:{tmp_path}")
    assert [source.class_counts(s) for s in source.split_names] == [[16, 16], [2, 2], [2, 2]]
    again = open_source(f"folder:{tmp_path}")
    assert np.array_equal(source.split_index("test").positions,
                          again.split_index("test").positions)
    subset = open_source(f"folder:{tmp_path}", limit=10, seed=1)
    assert subset.class_counts("train") == [5, 5]


def test_what_the_files_hold_is_reported_with_what_they_become(tmp_path):
    rng = np.random.default_rng(4)
    write_class_folder(str(tmp_path), per_class=2, size=16)
    gray16 = (rng.integers(0, 256, (16, 16)) * 257 + 100).astype(np.uint16)
    write_image(str(tmp_path / "benign" / "gray16.png"), gray16)
    rgb16 = rng.integers(0, 65536, (16, 16, 3)).astype(np.uint16)
    (tmp_path / "malignant" / "rgb16.png").write_bytes(tf.io.encode_png(rgb16).numpy())
    source = open_source(f"folder:{tmp_path}", split_fractions=(1, 0, 0))
    assert source.native_image_size == 16
    kinds = {kind["found"]: kind for kind in source.describe()["file_kinds"]}
    assert set(kinds) == {"8-bit RGB PNG", "16-bit grayscale PNG", "16-bit RGB PNG"}
    assert kinds["8-bit RGB PNG"]["count"] == 4 and kinds["8-bit RGB PNG"]["converted_to"] is None
    assert kinds["16-bit grayscale PNG"] == {
        "found": "16-bit grayscale PNG", "count": 1, "example": str(tmp_path / "benign" /
                                                                   "gray16.png"),
        "converted_to": "8-bit RGB (value / 257, grey in all three channels)"}
    assert kinds["16-bit RGB PNG"]["converted_to"] == "8-bit RGB (the high byte of each channel)"
    decoded = _raw_by_path(source, "train")
    assert np.array_equal(decoded[str(tmp_path / "malignant" / "rgb16.png")],
                          (rgb16 >> 8).astype(np.uint8))
    assert np.array_equal(decoded[str(tmp_path / "benign" / "gray16.png")][..., 0],
                          np.round(gray16 / 257).astype(np.uint8))


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 40, 3), (30, 5)])
def test_images_below_the_minimum_side_are_bad_files(tmp_path, caplog, shape):
    from hvitgan_tf.data.image_files import MIN_IMAGE_SIDE

    write_class_folder(str(tmp_path), per_class=3, size=16)
    write_image(str(tmp_path / "benign" / "least.png"),
                np.zeros((MIN_IMAGE_SIDE, 40, 3), np.uint8))  # the minimum itself is fine
    small = write_image(str(tmp_path / "malignant" / "small.png"), np.zeros(shape, np.uint8))
    with pytest.raises(DataError) as error:
        open_source(f"folder:{tmp_path}")
    height, width = shape[:2]
    assert (f"1 bad image file(s) in {tmp_path}: {small}: too small: {width}x{height} px "
            "(images need at least 8 px on the short side") in str(error.value)
    with caplog.at_level(logging.WARNING, logger="hvitgan_tf.data"):
        source = open_source(f"folder:{tmp_path}", skip_bad=True)
    assert "skipped 1 bad image file(s) of 8" in caplog.text
    assert [path for path, _ in source.skipped] == [small]
    assert sum(source.num_examples(split) for split in source.split_names) == 7
