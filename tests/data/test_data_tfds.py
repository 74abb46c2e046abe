"""tfds:patch_camelyon — through tfds.testing.mock_data (offline) and with no prepared copy."""
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from hvitgan_tf.data import DataError, open_source


@pytest.fixture
def mocked_pcam():
    with tfds.testing.mock_data(num_examples=12):
        yield


def test_mocked_pcam_flows_with_the_right_dtypes(mocked_pcam):
    source = open_source("tfds:patch_camelyon")
    assert source.class_names == ["no_tumor", "tumor"]
    assert source.native_image_size == 96
    # The mock serves 12 examples per split; the source must report what really flows.
    assert [source.num_examples(s) for s in source.split_names] == [12, 12, 12]
    counts = source.class_counts("train")
    assert sum(counts) == 12
    images, labels = zip(*source.examples("train", 32).as_numpy_iterator())
    images, labels = np.stack(images), np.array(labels)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.1
    assert labels.dtype == np.int32 and np.bincount(labels, minlength=2).tolist() == counts
    raw, _ = next(iter(source.raw_examples("test")))
    assert raw.dtype == tf.uint8 and raw.shape == (96, 96, 3)


def test_mocked_pcam_subset(mocked_pcam):
    full = open_source("tfds:patch_camelyon")
    source = open_source("tfds:patch_camelyon", limit=6, seed=2)
    assert source.num_examples("train") == 6
    labels = [int(label) for _, label in source.examples("train", 16, shuffle=True, seed=0)]
    assert len(labels) == 6
    assert np.bincount(labels, minlength=2).tolist() == source.class_counts("train")
    expected = 6 * np.array(full.class_counts("train")) / 12
    assert np.all(np.abs(np.array(source.class_counts("train")) - expected) <= 1)
    assert source.num_examples("validation") == 12  # validation is used whole
    batches = list(source.batches("train", 16, 4))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 16, 16, 3), (2, 16, 16, 3)]


def test_missing_copy_is_a_clear_error_without_download(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("open_source must never start a download")

    def no_network(*args, **kwargs):
        raise AssertionError("open_source must not touch the network")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        open_source("tfds:patch_camelyon", data_dir=str(tmp_path))
    assert time.monotonic() - started < 20
    message = str(error.value)
    assert str(tmp_path) in message and "\n" not in message
    for how in ("--data-dir", "zenodo.org/record/2546921", "DownloadConfig(manual_dir=",
                "camelyonpatch_level_2_split_", "pcam-h5:"):
        assert how in message
    assert list(tmp_path.iterdir()) == []  # nothing was written either


def test_missing_data_dir_and_other_datasets(tmp_path):
    with pytest.raises(DataError, match="--data-dir .* does not exist"):
        open_source("tfds:patch_camelyon", data_dir=str(tmp_path / "nope"))
    with pytest.raises(DataError, match="only tfds:patch_camelyon"):
        open_source("tfds:mnist")
