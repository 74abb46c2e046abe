"""pcam-h5:DIR — PCam's original HDF5 files, streamed in blocks."""
import gzip
import os
import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf

from data_writers import write_pcam_h5
from hvitgan_tf.data import DataError, open_source
from hvitgan_tf.data import pcam_h5


def test_splits_labels_and_images(pcam_dir):
    directory, written = pcam_dir
    source = open_source(f"pcam-h5:{directory}")
    assert source.class_names == ["no_tumor", "tumor"]
    assert source.native_image_size == 96
    assert [source.num_examples(s) for s in source.split_names] == [40, 12, 12]
    images, labels = written["valid"]
    assert source.class_counts("validation") == np.bincount(labels, minlength=2).tolist()
    raw = list(source.raw_examples("validation").as_numpy_iterator())
    assert all(np.array_equal(image, images[i]) and label == labels[i]
               for i, (image, label) in enumerate(raw))
    image, label = next(iter(source.examples("train", 32)))
    assert image.dtype == tf.float32 and image.shape == (32, 32, 3)
    assert label.dtype == tf.int32 and label.shape == ()
    assert -1.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0


def test_shuffled_subset_keeps_images_with_their_labels(pcam_dir):
    directory, written = pcam_dir
    images, labels = written["train"]
    source = open_source(f"pcam-h5:{directory}", limit=20, seed=5)
    chosen = source.split_index("train").positions
    seen = []
    for image, label in source.raw_examples("train", shuffle=True, seed=1).as_numpy_iterator():
        index = int(image[0, 0, 0])  # the writer put each patch's index there
        assert np.array_equal(image, images[index]) and label == labels[index]
        seen.append(index)
    assert sorted(seen) == chosen.tolist() and seen != chosen.tolist()
    assert source.class_counts("train") == np.bincount(labels[chosen], minlength=2).tolist()


@pytest.mark.parametrize("chunks", [None, (4, 96, 96, 3)])
def test_images_are_read_in_blocks_never_whole(tmp_path, monkeypatch, chunks):
    write_pcam_h5(str(tmp_path), chunks=chunks)
    requests = []
    original = h5py.Dataset.__getitem__

    def recording_getitem(self, selection):
        result = original(self, selection)
        if self.name == "/x":
            requests.append(len(result))
        return result

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording_getitem)
    monkeypatch.setattr(pcam_h5, "READ_BLOCK", 4)
    source = open_source(f"pcam-h5:{tmp_path}", limit=18, seed=0)
    assert requests == []  # opening reads labels and shapes, no pixels
    for _ in source.examples("train", 16, shuffle=True, seed=3):
        pass
    assert max(requests) <= 4 and sum(requests) == 18
    requests.clear()
    list(source.raw_examples("test"))  # consecutive positions: contiguous slices
    assert requests == [4, 4, 4]


def test_read_rows_restores_the_requested_order(pcam_dir):
    directory, written = pcam_dir
    path = os.path.join(directory, "camelyonpatch_level_2_split_train_x.h5")
    order = np.array([7, 2, 30, 3])
    assert np.array_equal(pcam_h5.read_rows(path, order), written["train"][0][order])


def test_length_mismatch_names_both_files(tmp_path):
    write_pcam_h5(str(tmp_path))
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_valid_y.h5", "w") as handle:
        handle.create_dataset("y", data=np.zeros([11, 1, 1, 1], np.uint8))
    with pytest.raises(DataError) as error:
        open_source(f"pcam-h5:{tmp_path}")
    message = str(error.value)
    assert "camelyonpatch_level_2_split_valid_x.h5 holds 12 images" in message
    assert "camelyonpatch_level_2_split_valid_y.h5 holds 11 labels" in message


def test_label_outside_the_class_range(tmp_path):
    write_pcam_h5(str(tmp_path), label_rule=lambda n: np.arange(n) % 3)  # labels 0, 1, 2
    with pytest.raises(DataError, match=r"split_train_y\.h5: label 2 at index 2 is outside"):
        open_source(f"pcam-h5:{tmp_path}")


def test_missing_file_is_named(tmp_path):
    write_pcam_h5(str(tmp_path))
    os.remove(tmp_path / "camelyonpatch_level_2_split_test_x.h5")
    with pytest.raises(DataError, match="missing PCam file .*split_test_x.h5"):
        open_source(f"pcam-h5:{tmp_path}")


def test_gzipped_files_ask_for_gunzip(tmp_path):
    write_pcam_h5(str(tmp_path))
    path = tmp_path / "camelyonpatch_level_2_split_train_x.h5"
    with open(path, "rb") as plain, gzip.open(str(path) + ".gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    os.remove(path)
    with pytest.raises(DataError, match="still gzipped.*gunzip -k"):
        open_source(f"pcam-h5:{tmp_path}")


def test_not_hdf5_and_wrong_keys(tmp_path):
    write_pcam_h5(str(tmp_path))
    (tmp_path / "camelyonpatch_level_2_split_test_y.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="split_test_y.h5: not a readable HDF5 file"):
        open_source(f"pcam-h5:{tmp_path}")
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_test_y.h5", "w") as handle:
        handle.create_dataset("labels", data=np.zeros([12, 1, 1, 1], np.uint8))
    with pytest.raises(DataError, match="has no dataset 'y' \\(found: labels\\)"):
        open_source(f"pcam-h5:{tmp_path}")


def test_missing_directory():
    with pytest.raises(DataError, match="does not exist"):
        open_source("pcam-h5:/nonexistent/pcam")
