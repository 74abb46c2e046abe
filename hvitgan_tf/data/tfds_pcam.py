"""``tfds:patch_camelyon``: PatchCamelyon through TensorFlow Datasets (docs/method.md §8).

``data_dir`` (``--data-dir``) is a TFDS data directory that already holds a prepared copy
(``<data_dir>/patch_camelyon/2.0.0/``); without it TFDS's default applies (``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``). Opening never downloads: the full download is 7.5 GiB from Zenodo,
and a training command should not start one implicitly or hang without a network. A missing
copy is a ``DataError`` that explains the three ways to get PCam:

1. With network, prepare it once::

       import tensorflow_datasets as tfds
       tfds.builder("patch_camelyon", data_dir=DATA_DIR).download_and_prepare()

2. Manual download: fetch the six ``camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5.gz``
   files from https://zenodo.org/record/2546921 into MANUAL_DIR (TFDS still checks their
   checksums), then::

       tfds.builder("patch_camelyon", data_dir=DATA_DIR).download_and_prepare(
           download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR))

3. Skip TFDS: gunzip the six files and use ``--data pcam-h5:MANUAL_DIR`` (streamed directly).

Records are read in stored order with the image left PNG-encoded, so a label-only pass (needed
for class counts and for a stratified ``--fraction``/``--limit`` subset) never decodes pixels;
it is done lazily, once per split and process. A training subset still reads every training
record each epoch and decodes only the selected ones; ``pcam-h5:`` reads only the selected rows.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from hvitgan_tf.data.base import AUTOTUNE, DataSource, SplitIndex
from hvitgan_tf.data.forms import DataError
from hvitgan_tf.data.pcam_h5 import PCAM_CLASS_NAMES

SUPPORTED_DATASETS = ("patch_camelyon",)
PCAM_IMAGE_SIZE = 96
ZENODO_RECORD = "https://zenodo.org/record/2546921"


def missing_copy_message(spec: str, data_dir: str) -> str:
    """The one-line explanation of how to obtain PCam when no prepared copy exists."""
    return (
        f"{spec}: no prepared copy of patch_camelyon in the TFDS data dir {data_dir} "
        f"(expected {os.path.join(data_dir, 'patch_camelyon', '2.0.0')}), and hvitgan-tf never "
        "downloads it implicitly (7.5 GiB). Point --data-dir at an existing TFDS copy; or, with "
        "network, run tfds.builder('patch_camelyon', data_dir=DIR).download_and_prepare() once; "
        "or download the six camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5.gz files "
        f"from {ZENODO_RECORD} into MANUAL_DIR and prepare them with tfds.builder("
        "'patch_camelyon', data_dir=DIR).download_and_prepare(download_config="
        "tfds.download.DownloadConfig(manual_dir=MANUAL_DIR)); or gunzip them and use "
        "--data pcam-h5:MANUAL_DIR, which needs no TFDS preparation."
    )


class TFDSPatchCamelyonSource(DataSource):
    """PatchCamelyon from a prepared TFDS copy (see the module docstring)."""

    kind = "tfds"

    def __init__(self, spec: str, name: str, data_dir: Optional[str] = None, **subset):
        import tensorflow_datasets as tfds

        if name not in SUPPORTED_DATASETS:
            raise DataError(f"{spec}: only tfds:patch_camelyon is supported; read other data "
                            "with folder:DIR or tfrecord:GLOB")
        if data_dir is not None:
            data_dir = os.path.expanduser(str(data_dir))
            if not os.path.isdir(data_dir):
                raise DataError(f"{spec}: --data-dir {data_dir} does not exist")
        self._tfds = tfds
        self._builder = tfds.builder(name, data_dir=data_dir)
        resolved_dir = str(self._builder.data_dir_root)
        self._cardinality = {}  # split -> records per TFDS metadata (cheap)
        self._store_sizes = {}  # split -> records seen by the label pass
        try:
            # as_dataset only checks that the prepared files exist; it never downloads.
            self._records("train")
        except (AssertionError, FileNotFoundError, tf.errors.NotFoundError):
            raise DataError(missing_copy_message(spec, resolved_dir)) from None
        super().__init__(
            spec, PCAM_CLASS_NAMES, PCAM_IMAGE_SIZE,
            description="PatchCamelyon via TensorFlow Datasets, label 1 = tumour in the "
                        "centre 32x32 px",
            location=resolved_dir,
            split_rule="fixed by the dataset (TFDS train / validation / test)",
            **subset,
        )

    def _records(self, split: str) -> tf.data.Dataset:
        """``(PNG bytes, int32 label)`` in stored order: no file shuffling, no decoding."""
        dataset = self._builder.as_dataset(
            split=split, shuffle_files=False,
            decoders={"image": self._tfds.decode.SkipDecoding()})
        self._cardinality.setdefault(split, int(dataset.cardinality()))
        return dataset.map(lambda example: (example["image"],
                                            tf.cast(example["label"], tf.int32)))

    def _known_num_examples(self, split: str) -> Optional[int]:
        if split not in self._cardinality:
            self._records(split)
        count = self._cardinality[split]
        return count if count >= 0 else None

    def _build_index(self, split: str) -> SplitIndex:
        # Label-only pass: [N] int32 in stored order, batched so Python sees few elements.
        chunks = [labels for labels in
                  self._records(split).map(lambda image, label: label).batch(16384)
                  .as_numpy_iterator()]
        labels = (np.concatenate(chunks) if chunks else np.zeros([0])).astype(np.int32)
        self._store_sizes[split] = len(labels)
        return SplitIndex(split, np.arange(len(labels), dtype=np.int64), labels)

    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        size = self.native_image_size

        def decode(encoded, label):
            image = tf.io.decode_png(encoded, channels=3)
            return tf.ensure_shape(image, [size, size, 3]), label

        stream = self._select_from_stream(self._records(index.store), index,
                                          self._store_sizes[index.store], shuffle, seed,
                                          repeat)
        return stream.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
