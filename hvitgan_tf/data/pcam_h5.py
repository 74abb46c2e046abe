"""``pcam-h5:DIR``: the original PatchCamelyon HDF5 files, streamed (docs/method.md §8).

DIR holds the six files of the Zenodo release (record 2546921), gunzipped::

    camelyonpatch_level_2_split_{train,valid,test}_x.h5   key "x": uint8 [N, 96, 96, 3]
    camelyonpatch_level_2_split_{train,valid,test}_y.h5   key "y": uint8 [N, 1, 1, 1]

``train``/``valid``/``test`` serve the ``train``/``validation``/``test`` splits (262,144 /
32,768 / 32,768 patches). Label 1 (``tumor``) means the centre 32 x 32 px hold tumour tissue.

The label files are tiny and read whole when the source opens; the image file (6.4 GB for train)
is never loaded: the pipeline reads ``READ_BLOCK`` rows per HDF5 request, one contiguous slice
when the positions are consecutive, an increasing point selection otherwise (shuffled or
subset order). The ``.h5.gz`` files as downloaded are refused with a message to gunzip them:
HDF5 needs random access, which a gzip stream cannot give without decompressing from the start.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np
import tensorflow as tf

from hvitgan_tf.data.base import DataSource, SplitIndex
from hvitgan_tf.data.forms import DataError

#: Rows per HDF5 read: 256 PCam patches are 7 MB.
READ_BLOCK = 256

#: File stem per split of ours; the release calls the validation split "valid".
SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}
#: PCam's label 1 marks tumour tissue in the centre region; shared with ``tfds:patch_camelyon``.
PCAM_CLASS_NAMES = ("no_tumor", "tumor")


def pcam_file_name(split: str, kind: str) -> str:
    """``camelyonpatch_level_2_split_<train|valid|test>_<x|y>.h5`` for one of our splits."""
    return f"camelyonpatch_level_2_split_{SPLIT_FILES[split]}_{kind}.h5"


def read_rows(path: str, positions: np.ndarray) -> np.ndarray:
    """Rows ``positions`` of dataset ``x`` in ``path``, in the given order, in one HDF5 read.

    h5py point selections must be strictly increasing, so the block reads each distinct row
    once in ascending order and puts them back in the requested order (a block of an endless
    training stream may hold one row twice). The file is opened per block: it costs about a
    millisecond per ``READ_BLOCK`` patches and leaves no handle shared between tf.data threads.
    """
    import h5py

    positions = np.asarray(positions, dtype=np.int64)
    ascending, inverse = np.unique(positions, return_inverse=True)
    with h5py.File(path, "r") as handle:
        images = handle["x"]
        if ascending[-1] - ascending[0] + 1 == len(ascending):
            block = images[int(ascending[0]):int(ascending[-1]) + 1]
        else:
            block = images[ascending]
    return block[inverse]


class PCamH5Source(DataSource):
    """PatchCamelyon from its HDF5 files (see the module docstring)."""

    kind = "pcam-h5"

    def __init__(self, spec: str, directory: str, **subset):
        import h5py

        self.directory = directory
        if not os.path.isdir(directory):
            raise DataError(f"{spec}: directory {directory} does not exist")
        self._x_paths: Dict[str, str] = {}
        self._labels: Dict[str, np.ndarray] = {}
        native = None
        for split in SPLIT_FILES:
            x_path, y_path = (os.path.join(directory, pcam_file_name(split, kind))
                              for kind in ("x", "y"))
            for path in (x_path, y_path):
                _require_file(path)
            labels = _read_labels(h5py, y_path)
            size = _check_images(h5py, x_path, len(labels), y_path)
            if native is not None and size != native:
                raise DataError(f"{x_path}: patches are {size} px but the other splits' are "
                                f"{native} px")
            native = size
            self._x_paths[split] = x_path
            self._labels[split] = labels
        super().__init__(
            spec, PCAM_CLASS_NAMES, native,
            description="PatchCamelyon (original HDF5 release), label 1 = tumour in the "
                        "centre 32x32 px",
            location=os.path.abspath(directory),
            split_rule="fixed by the dataset (train / valid / test files)",
            **subset,
        )

    def _known_num_examples(self, split: str) -> int:
        return len(self._labels[split])

    def _build_index(self, split: str) -> SplitIndex:
        labels = self._labels[split]
        return SplitIndex(split, np.arange(len(labels), dtype=np.int64), labels)

    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        path = self._x_paths[index.store]
        size = self.native_image_size

        def read_block(positions, labels):
            # positions [B] -> images [B, size, size, 3]: one HDF5 request per block.
            images = tf.numpy_function(lambda p: read_rows(path, p), [positions], tf.uint8,
                                       name="read_pcam_h5_rows")
            return tf.ensure_shape(images, [None, size, size, 3]), labels

        # A sequential map: h5py serialises reads behind one lock, so more calls would only
        # queue; decoding-free rows make this fast and the per-image work runs in parallel later.
        return (self._positions_dataset(index, shuffle, seed, repeat)
                .batch(READ_BLOCK)
                .map(read_block)
                .unbatch())


def _require_file(path: str) -> None:
    if os.path.isfile(path):
        return
    if os.path.isfile(path + ".gz"):
        raise DataError(f"{path}.gz is still gzipped: HDF5 needs random access, so unpack it "
                        f"once with 'gunzip -k {path}.gz' (the train images need 6.4 GB)")
    raise DataError(f"missing PCam file {path} (pcam-h5:DIR expects camelyonpatch_level_2_"
                    "split_{train,valid,test}_{x,y}.h5 from zenodo.org/record/2546921, gunzipped)")


def _open_dataset(h5py, path: str, key: str):
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    if key not in handle:
        keys = ", ".join(sorted(handle.keys())) or "none"
        handle.close()
        raise DataError(f"{path}: has no dataset {key!r} (found: {keys})")
    return handle, handle[key]


def _read_labels(h5py, path: str) -> np.ndarray:
    """``y`` as int32 ``[N]``; PCam stores it as ``[N, 1, 1, 1]``."""
    handle, dataset = _open_dataset(h5py, path, "y")
    with handle:
        if dataset.ndim < 1 or int(np.prod(dataset.shape[1:], dtype=np.int64)) != 1:
            raise DataError(f"{path}: labels 'y' must be [N] or [N, 1, 1, 1], got shape "
                            f"{list(dataset.shape)}")
        if not np.issubdtype(dataset.dtype, np.integer):
            raise DataError(f"{path}: labels 'y' must be integers, got {dataset.dtype}")
        raw = dataset[()].reshape(-1).astype(np.int64)  # [N, 1, 1, 1] -> [N]
    bad = np.flatnonzero((raw < 0) | (raw >= len(PCAM_CLASS_NAMES)))
    if len(bad):
        raise DataError(f"{path}: label {raw[bad[0]]} at index {bad[0]} is outside the class "
                        f"range 0..{len(PCAM_CLASS_NAMES) - 1} ({len(bad)} such labels)")
    return raw.astype(np.int32)


def _check_images(h5py, path: str, num_labels: int, labels_path: str) -> int:
    """Shape and dtype of ``x`` only; no pixel is read here."""
    handle, dataset = _open_dataset(h5py, path, "x")
    with handle:
        shape, dtype = tuple(dataset.shape), dataset.dtype
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[1] < 1:
        raise DataError(f"{path}: images 'x' must be [N, S, S, 3], got shape {list(shape)}")
    if dtype != np.uint8:
        raise DataError(f"{path}: images 'x' must be uint8, got {dtype}")
    if shape[0] != num_labels:
        raise DataError(f"{path} holds {shape[0]} images but {labels_path} holds {num_labels} "
                        "labels; the x and y files must have the same length")
    return int(shape[1])
