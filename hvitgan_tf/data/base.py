"""``DataSource``: the one interface every ``--data`` form implements (docs/method.md §8).

A source knows its class names and, per split, which stored examples belong to it (a
``SplitIndex``). From that the base class builds every ``tf.data`` pipeline the same way:

    positions (+ seeded shuffle) -> read uint8 image, label -> resize to S, scale to [-1, 1]

Sources differ only in how they read: random-access sources (demo, pcam-h5, folder) map a
dataset of positions to images; stream sources (tfds, tfrecord) read their records in stored
order and keep the wanted positions with a mask. Example-level datasets stay unbatched and
deterministic (``deterministic=True`` on every parallel map) so the trainer can batch them its own
way and resume mid-epoch with ``.skip()``.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from hvitgan_tf.data.forms import SPLIT_NAMES, DataError
from hvitgan_tf.data.splitting import stratified_split, stratified_subset, subset_size
from hvitgan_tf.imaging import tensor_to_float

AUTOTUNE = tf.data.AUTOTUNE

#: Shuffle buffer (records) for stream sources; random-access sources shuffle their whole
#: index instead, which is exact and costs only the positions.
STREAM_SHUFFLE_BUFFER = 8192
#: Repeated random-access streams: "forever", in passes.
EPOCHS_FOREVER = 1 << 40


@dataclasses.dataclass(frozen=True)
class SplitIndex:
    """Which stored examples make up one split.

    ``store`` names the underlying collection the positions point into (``"all"`` for sources
    that are split by us, a file or TFDS split name otherwise); ``positions`` are increasing int64
    indices into it and ``labels[i]`` is the class of ``positions[i]``.
    """

    store: str
    positions: np.ndarray
    labels: np.ndarray


def to_model_input(images, image_size: int):
    """uint8 images ``[..., H, W, 3]`` -> float32 ``[..., S, S, 3]`` in ``[-1, 1]`` (docs/method.md
    §8).

    Non-square images are centre-cropped to a square first (tissue keeps its aspect ratio);
    images that are not ``S x S`` are resized bilinearly with antialiasing (a plain bilinear
    downscale would alias the nuclei texture). Works on one image or a batch.
    """
    images = tf.convert_to_tensor(images)
    size = int(image_size)
    height, width = images.shape[-3], images.shape[-2]
    if not (height == width == size):
        dynamic = tf.shape(images)
        height, width = dynamic[-3], dynamic[-2]
        side = tf.minimum(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        images = images[..., top:top + side, left:left + side, :]
        images = tf.image.resize(images, [size, size], method="bilinear", antialias=True)
    images = tensor_to_float(images)
    # Bilinear weights are non-negative, so this only removes float round-off.
    images = tf.clip_by_value(images, -1.0, 1.0)
    return tf.ensure_shape(images, images.shape[:-3] + [size, size, 3])


def split_rule_text(split_fractions, split_seed: int) -> str:
    """How a source without its own splits was split, for ``describe()``."""
    shares = "/".join(f"{100 * f:g}" for f in split_fractions)
    return f"seeded stratified split {shares} % (train/validation/test), split seed {split_seed}"


class DataSource(abc.ABC):
    """A labelled patch collection with ``train`` / ``validation`` / ``test`` splits.

    Public surface (what the trainer, evaluation and benchmark use):
    ``spec``, ``kind``, ``class_names``, ``num_classes``, ``native_image_size``,
    ``split_names``, ``num_examples(split)``, ``class_counts(split)``,
    ``examples(split, image_size, shuffle=, seed=)``, ``batches(...)``,
    ``raw_examples(split, shuffle=, seed=)``, ``describe()`` and ``skipped``.

    Subsetting (``fraction`` / ``limit`` with ``seed``) applies to the training split only: the
    validation and test splits are always used whole (docs/method.md §8, the PCam paper's protocol).
    """

    #: Short name of the source form ("demo", "pcam-h5", ...); set by each subclass.
    kind: str = ""
    split_names: Tuple[str, ...] = SPLIT_NAMES

    def __init__(self, spec: str, class_names: Sequence[str], native_image_size: Optional[int],
                 *, fraction=None, limit=None, seed: int = 0, description: str = "",
                 location: Optional[str] = None, split_rule: str = "",
                 skipped: Sequence[Tuple[str, str]] = (), file_kinds: Sequence[dict] = ()):
        self.spec = spec
        self.class_names: List[str] = list(class_names)
        self.native_image_size = native_image_size
        self.fraction = fraction
        self.limit = limit
        self.seed = int(seed)
        self.description = description
        self.location = location
        self.split_rule = split_rule
        #: ``(path or record, reason)`` of every input left out because ``skip_bad=True``.
        self.skipped: List[Tuple[str, str]] = list(skipped)
        #: What the files of an image-file source hold and what they are converted to
        #: (``image_files.file_kinds``); empty for sources of uint8 RGB arrays.
        self.file_kinds: List[dict] = [dict(kind) for kind in file_kinds]
        self._full_indices: Dict[str, SplitIndex] = {}  # before subsetting
        self._indices: Dict[str, SplitIndex] = {}  # after subsetting
        if self.num_classes < 2:
            raise DataError(f"{spec}: found {self.num_classes} class ({self.class_names}); "
                            "a conditional GAN needs at least 2")

    # -- what each source implements ----------------------------------------------------------
    @abc.abstractmethod
    def _build_index(self, split: str) -> SplitIndex:
        """The split before subsetting (called at most once per split)."""

    @abc.abstractmethod
    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        """``(uint8 [H, W, 3], int32 label)`` for ``index``, unbatched, in a deterministic
        order (stored order, or a seeded shuffle of it); endless with ``repeat`` (see
        ``_ordered``)."""

    def _known_num_examples(self, split: str) -> Optional[int]:
        """The split's size before subsetting when it is known without reading labels."""
        return None

    # -- sizes and counts ---------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def subsetting(self) -> bool:
        return self.fraction is not None or self.limit is not None

    def _check_split(self, split: str) -> None:
        if split not in self.split_names:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(self.split_names)}")

    def split_index(self, split: str) -> SplitIndex:
        """The split's ``SplitIndex``, the training subset applied (computed once, cached)."""
        self._check_split(split)
        if split not in self._indices:
            index = self._full_index(split)
            if split == "train" and self.subsetting:
                keep = stratified_subset(index.labels, self.num_classes, fraction=self.fraction,
                                         limit=self.limit, seed=self.seed,
                                         what=f"training split of {self.spec}")
                index = SplitIndex(index.store, index.positions[keep], index.labels[keep])
            self._indices[split] = index
        return self._indices[split]

    def _full_index(self, split: str) -> SplitIndex:
        if split not in self._full_indices:
            self._full_indices[split] = self._build_index(split)
        return self._full_indices[split]

    def full_num_examples(self, split: str) -> int:
        """The split's size before the training subset is drawn."""
        self._check_split(split)
        known = None if split in self._full_indices else self._known_num_examples(split)
        return known if known is not None else len(self._full_index(split).positions)

    def num_examples(self, split: str) -> int:
        """How many examples ``examples(split, ...)`` yields per epoch."""
        self._check_split(split)
        if split not in self._indices:
            known = self._known_num_examples(split)
            if known is not None:
                if split == "train" and self.subsetting:
                    return subset_size(known, fraction=self.fraction, limit=self.limit)
                return known
        return len(self.split_index(split).positions)

    def class_counts(self, split: str) -> List[int]:
        """Examples per class in ``split`` (index = label), after subsetting."""
        labels = self.split_index(split).labels
        return np.bincount(labels, minlength=self.num_classes).astype(int).tolist()

    # -- pipelines ----------------------------------------------------------------------------
    def raw_examples(self, split: str, *, shuffle: bool = False, seed: int = 0,
                     repeat: bool = False) -> tf.data.Dataset:
        """``(uint8 [H, W, 3], int32 label)`` at the stored size (may vary for ``folder:``)."""
        index = self.split_index(split)
        return self._read(index, bool(shuffle), int(seed), bool(repeat))

    def examples(self, split: str, image_size: int, *, shuffle: bool = False, seed: int = 0,
                 repeat: bool = False) -> tf.data.Dataset:
        """``(float32 [S, S, 3] in [-1, 1], int32 label)``, unbatched.

        Without ``shuffle`` the order is the stored order. With it, the order is a seeded
        permutation that changes on every new iteration of the same dataset and is the same
        in every process for the same ``seed`` and global TF seed.

        ``repeat=True`` gives an endless stream with a new order on every pass. For
        random-access sources (demo, pcam-h5, folder) pass ``e`` is a stateless permutation of
        ``(seed, e)``, identical for every iterator; stream sources (tfds, tfrecord) reshuffle
        through a seeded buffer, a sequence of orders fixed per iterator.
        """
        size = int(image_size)
        if size < 1:
            raise DataError(f"image_size must be positive, got {image_size}")
        dataset = self.raw_examples(split, shuffle=shuffle, seed=seed, repeat=repeat)
        return dataset.map(lambda image, label: (to_model_input(image, size), label),
                           num_parallel_calls=AUTOTUNE, deterministic=True)

    def batches(self, split: str, image_size: int, batch_size: int, *, shuffle: bool = False,
                seed: int = 0, repeat: bool = False, drop_remainder: bool = False
                ) -> tf.data.Dataset:
        """``examples`` batched to ``[B, S, S, 3]`` / ``[B]`` and prefetched."""
        if int(batch_size) < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        dataset = self.examples(split, image_size, shuffle=shuffle, seed=seed, repeat=repeat)
        dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder,
                                num_parallel_calls=AUTOTUNE, deterministic=True)
        return dataset.prefetch(AUTOTUNE)

    # -- helpers for subclasses ---------------------------------------------------------------
    @classmethod
    def _positions_dataset(cls, index: SplitIndex, shuffle: bool, seed: int,
                           repeat: bool = False) -> tf.data.Dataset:
        """``(int64 position, int32 label)`` in stored order or a seeded full shuffle.

        With ``repeat`` the stream is endless and pass ``e`` is the stateless permutation
        ``index_shuffle(seed=[seed, e])``: a pure function of ``(seed, e)``, whatever iterator
        reads it and whatever the global TF seed (exact training resumes rely on that).
        """
        positions = index.positions.astype(np.int64)
        labels = index.labels.astype(np.int32)
        count = len(positions)
        if repeat and shuffle:
            positions_t, labels_t = tf.constant(positions), tf.constant(labels)
            pass_seed = tf.constant(seed, tf.int64)

            def one_pass(epoch):
                order = tf.random.experimental.index_shuffle(
                    tf.range(count, dtype=tf.int64), tf.stack([pass_seed, epoch]),
                    max_index=count - 1)
                return tf.data.Dataset.from_tensor_slices(
                    (tf.gather(positions_t, order), tf.gather(labels_t, order)))

            return tf.data.Dataset.range(EPOCHS_FOREVER).flat_map(one_pass)
        dataset = tf.data.Dataset.from_tensor_slices((positions, labels))
        return cls._ordered(dataset, count, shuffle, seed, repeat)

    @staticmethod
    def _ordered(dataset: tf.data.Dataset, buffer: int, shuffle: bool, seed: int,
                 repeat: bool) -> tf.data.Dataset:
        """Stored or seeded-buffer order; with ``repeat``, endless and reshuffled every pass.

        The sequence of pass orders is fixed by ``seed`` for one iterator; a second iterator
        opened on the same dataset continues the shuffle's seed sequence (tf.data's
        ``reshuffle_each_iteration``), so it sees other orders.
        """
        if shuffle:
            dataset = dataset.shuffle(max(1, int(buffer)), seed=seed,
                                      reshuffle_each_iteration=True)
        return dataset.repeat() if repeat else dataset

    @classmethod
    def _select_from_stream(cls, stream: tf.data.Dataset, index: SplitIndex, store_size: int,
                            shuffle: bool, seed: int, repeat: bool = False) -> tf.data.Dataset:
        """Keep ``index.positions`` of a stream read in stored order, then shuffle in a buffer."""
        count = len(index.positions)
        if count != store_size:
            mask = np.zeros([store_size], dtype=bool)
            mask[index.positions] = True
            mask = tf.constant(mask)
            stream = (stream.enumerate()
                      .filter(lambda position, element: tf.gather(mask, position))
                      .map(lambda position, element: element))
        stream = stream.apply(tf.data.experimental.assert_cardinality(count))
        return cls._ordered(stream, min(count, STREAM_SHUFFLE_BUFFER), shuffle, seed, repeat)

    @staticmethod
    def _split_all(labels: np.ndarray, split_fractions, split_seed: int
                   ) -> Dict[str, SplitIndex]:
        """Seeded stratified train/validation/test split of one store called ``"all"``."""
        labels = np.asarray(labels, dtype=np.int32)
        parts = stratified_split(labels, split_fractions, split_seed)
        return {name: SplitIndex("all", positions, labels[positions])
                for name, positions in parts.items()}

    def _check_classes_present(self, labels: np.ndarray, where: str) -> None:
        """docs/method.md §8 lists an empty class among the errors: each class needs an example."""
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=self.num_classes)
        empty = [name for name, count in zip(self.class_names, counts) if count == 0]
        if empty:
            raise DataError(f"{where}: class(es) {', '.join(empty)} have no examples")

    # -- reporting ----------------------------------------------------------------------------
    def describe(self) -> dict:
        """Everything ``hvitgan-tf data inspect`` prints, as plain JSON-able values."""
        splits = {}
        for split in self.split_names:
            counts = self.class_counts(split)
            splits[split] = {"num_examples": int(sum(counts)),
                             "class_counts": dict(zip(self.class_names, counts))}
        subset = None
        if self.subsetting:
            subset = {"fraction": self.fraction, "limit": self.limit, "seed": self.seed,
                      "applies_to": "train"}
        return {
            "spec": self.spec,
            "kind": self.kind,
            "description": self.description,
            "location": self.location,
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "native_image_size": self.native_image_size,
            "stored_dtype": "uint8",
            "served_as": "float32 [S, S, 3] in [-1, 1] with an int32 label",
            "split_rule": self.split_rule,
            "subset": subset,
            "splits": splits,
            "skipped": [{"item": item, "reason": reason} for item, reason in self.skipped],
            "file_kinds": [dict(kind) for kind in self.file_kinds],
        }

    def __repr__(self):
        return (f"{type(self).__name__}(spec={self.spec!r}, classes={self.class_names}, "
                f"native_image_size={self.native_image_size})")


class InMemorySource(DataSource):
    """A source whose every image is one NumPy array in memory, split by ``_split_all``
    (the built-in ``demo`` and ``glyphs`` sets)."""

    def __init__(self, spec: str, class_names: Sequence[str], images: np.ndarray,
                 labels: np.ndarray, *, split_fractions, split_seed: int = 0, **kwargs):
        self._images = images  # uint8 [N, H, W, 3]
        super().__init__(spec, class_names, images.shape[1],
                         split_rule=split_rule_text(split_fractions, split_seed), **kwargs)
        self._splits = self._split_all(labels, split_fractions, split_seed)

    def _build_index(self, split: str) -> SplitIndex:
        return self._splits[split]

    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        images = tf.constant(self._images)
        return self._positions_dataset(index, shuffle, seed, repeat).map(
            lambda position, label: (tf.gather(images, position), label),
            num_parallel_calls=AUTOTUNE, deterministic=True)
