"""``tfrecord:GLOB``: ``tf.train.Example`` shards (docs/method.md §6 output format, docs/method.md
§8 input).

Features of one record (``serialize_example`` writes exactly these):

=======================  ==========  =========================================================
``image/encoded``        bytes       PNG or JPEG (8-bit) of one patch — required
``image/class/label``    int64       class index ``0..K-1`` — required
``image/confidence``     float       classifier confidence of a synthetic patch — optional
``image/class/text``     bytes       class name (UTF-8) — optional
=======================  ==========  =========================================================

GLOB is a file pattern (``tf.io.gfile.glob``, so ``gs://`` works too) or a directory, which
means every ``*.tfrecord*`` file in it. Matches are read in sorted order; ``.gz`` files are read as
GZIP (TFX ExampleGen writes those). Hidden files and the side files ``classes.json``,
``classes.txt`` and ``manifest.csv`` are never read as shards.

Class names, first match wins per label: ``image/class/text`` of the records; else a
``classes.json`` (a JSON list of names, or ``{"class_names": [...]}``) or ``classes.txt`` (one
name per line, in label order) beside the first shard; else ``class_0 .. class_{K-1}``. K is the
length of the class file when there is one (a label at or past it is an error), else the largest
label + 1.

Opening reads every record once: labels, names, and a full decode of each image (Pillow, a few
threads), so a bad record is reported as ``<shard>#<record index>`` before training. With
``skip_bad=True`` bad records, and shards that are truncated or not TFRecord files, are left out
and counted instead. No splits are stored: ``open_source`` makes a seeded stratified split
(default 80/10/10) over all records.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from hvitgan_tf.data.base import AUTOTUNE, DataSource, SplitIndex, split_rule_text
from hvitgan_tf.data.forms import DataError
from hvitgan_tf.data.image_files import (bad_files_text, check_image, common_square_size,
                                         file_kinds, map_in_threads)

logger = logging.getLogger(__name__)

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
CONFIDENCE_KEY = "image/confidence"
CLASS_TEXT_KEY = "image/class/text"

CLASS_FILES = ("classes.json", "classes.txt")
_SIDE_FILES = set(CLASS_FILES) | {"manifest.csv"}
_READ_BATCH = 256


def serialize_example(encoded_image: bytes, label: int, *, confidence: Optional[float] = None,
                      class_name: Optional[str] = None) -> bytes:
    """One serialized ``tf.train.Example`` in the layout this module reads."""
    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(encoded_image)])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    if confidence is not None:
        feature[CONFIDENCE_KEY] = tf.train.Feature(
            float_list=tf.train.FloatList(value=[float(confidence)]))
    if class_name is not None:
        feature[CLASS_TEXT_KEY] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[class_name.encode("utf-8")]))
    # deterministic=True: protobuf otherwise writes the feature map in an order that varies
    # between processes, and the same sample would not give the same record bytes.
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def shard_files(pattern: str) -> List[str]:
    """Sorted shard paths for GLOB (a pattern, or a directory meaning ``DIR/*.tfrecord*``)."""
    if tf.io.gfile.isdir(pattern):
        pattern = os.path.join(pattern, "*.tfrecord*")
    matches = tf.io.gfile.glob(pattern)
    return sorted(path for path in matches
                  if not os.path.basename(path).startswith(".")
                  and os.path.basename(path) not in _SIDE_FILES
                  and not tf.io.gfile.isdir(path))


def compression_of(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def read_class_file(directory: str) -> Optional[Tuple[str, List[str]]]:
    """``(path, names)`` from ``classes.json`` or ``classes.txt`` in ``directory``, if any."""
    for name in CLASS_FILES:
        path = os.path.join(directory, name)
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "rb") as handle:
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text (damaged, or not a class file)") from None
        if name.endswith(".json"):
            try:
                names = json.loads(text)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}: not valid JSON ({error})") from None
            if isinstance(names, dict):
                names = names.get("class_names")
        else:
            names = [line.strip() for line in text.splitlines() if line.strip()]
        if not isinstance(names, list) or not names or not all(
                isinstance(n, str) and n for n in names):
            raise DataError(f"{path}: expected a non-empty list of class names "
                            '(JSON ["a", "b"] or {"class_names": [...]}; or one name per line)')
        if len(set(names)) != len(names):
            raise DataError(f"{path}: class names repeat: {names}")
        return path, names
    return None


def _parse(serialized):
    """Batch of serialized examples -> (encoded [B], label [B] or -1, text [B] or '')."""
    features = tf.io.parse_example(serialized, {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        CLASS_TEXT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    })
    return features[IMAGE_KEY], features[LABEL_KEY], features[CLASS_TEXT_KEY]


def _scan_shard(path: str):
    """``[(label, class text, ImageCheck)]`` for every record of one shard.

    Images are checked one read batch at a time, so memory holds one batch of encoded images,
    not the shard. Raises ``tf.errors`` when the shard itself is damaged.
    """
    dataset = (tf.data.TFRecordDataset(path, compression_type=compression_of(path))
               .batch(_READ_BATCH).map(_parse))
    records = []
    for encoded, labels, texts in dataset.as_numpy_iterator():
        checks = map_in_threads(check_image, list(encoded))
        records.extend(zip(labels.tolist(), texts.tolist(), checks))
    return records


def _shard_problem(error: tf.errors.OpError) -> str:
    first_line = error.message.splitlines()[0] if error.message else type(error).__name__
    if isinstance(error, tf.errors.DataLossError):
        return f"truncated or not a TFRecord file ({first_line})"
    return (f"records do not hold the expected features ({IMAGE_KEY} bytes, {LABEL_KEY} "
            f"int64, optional {CLASS_TEXT_KEY} bytes): {first_line}")


class TFRecordSource(DataSource):
    """``tf.train.Example`` shards (see the module docstring)."""

    kind = "tfrecord"

    def __init__(self, spec: str, pattern: str, *, skip_bad: bool = False, split_fractions,
                 split_seed: int = 0, **subset):
        files = shard_files(pattern)
        if not files:
            raise DataError(f"{spec}: no TFRecord files match {pattern!r}")
        class_file = read_class_file(os.path.dirname(files[0]))

        kept_files, labels, checks, wheres = [], [], [], []
        bad: List[Tuple[str, str]] = []
        texts: Dict[int, Tuple[str, str]] = {}  # label -> (name, where it was seen)
        for path in files:
            try:
                records = _scan_shard(path)
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
                if not skip_bad:
                    raise DataError(f"{path}: {_shard_problem(error)} (use --skip-bad to leave "
                                    "the shard out)") from None
                bad.append((path, _shard_problem(error)))
                continue
            kept_files.append(path)
            for record, (label, text, check) in enumerate(records):
                where = f"{path}#{record}"
                problem = _record_problem(label, check)
                if problem is not None:
                    if not skip_bad:
                        raise DataError(f"{where}: {problem} (use --skip-bad to leave such "
                                        "records out)")
                    bad.append((where, problem))
                    labels.append(-1)  # keeps stream positions aligned; excluded below
                    checks.append(None)
                    continue
                if text:
                    _remember_name(texts, int(label), text.decode("utf-8"), where)
                labels.append(int(label))
                checks.append(check)
                wheres.append(where)
        if bad:
            logger.warning("skipped %d bad TFRecord shard(s)/record(s) matching %s: %s",
                           len(bad), pattern, bad_files_text(bad))

        labels = np.asarray(labels, dtype=np.int64)
        good = labels >= 0
        class_names = _class_names(labels[good], texts, class_file)
        self._files = kept_files
        self._store_size = len(labels)
        self._good_positions = np.flatnonzero(good)
        super().__init__(
            spec, class_names,
            common_square_size(check for check in checks if check is not None),
            description=(f"{int(good.sum())} records in {len(kept_files)} TFRecord shard(s)"
                         + (f", class names from {class_file[0]}" if class_file and not texts
                            else "")),
            location=pattern,
            split_rule=split_rule_text(split_fractions, split_seed),
            skipped=bad,
            file_kinds=file_kinds(wheres, [check for check in checks if check is not None]),
            **subset,
        )
        good_labels = labels[good].astype(np.int32)
        self._check_classes_present(good_labels, f"{spec}")
        # Split over the good records, then map back to stream positions (bad ones skipped).
        self._splits = {
            name: SplitIndex("all", self._good_positions[index.positions], index.labels)
            for name, index in self._split_all(good_labels, split_fractions, split_seed).items()
        }

    def _build_index(self, split: str) -> SplitIndex:
        return self._splits[split]

    def _records(self) -> tf.data.Dataset:
        """``(encoded bytes, int32 label)`` of every record, in the order the scan saw them."""
        compressions = {compression_of(path) for path in self._files}
        if len(compressions) == 1:
            # Without num_parallel_reads the files are read one after the other, in order.
            stream = tf.data.TFRecordDataset(self._files, compression_type=compressions.pop())
        else:
            stream = tf.data.TFRecordDataset(self._files[0],
                                             compression_type=compression_of(self._files[0]))
            for path in self._files[1:]:
                stream = stream.concatenate(tf.data.TFRecordDataset(
                    path, compression_type=compression_of(path)))

        def parse(serialized):
            features = tf.io.parse_single_example(serialized, {
                IMAGE_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
                LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
            })
            return features[IMAGE_KEY], tf.cast(features[LABEL_KEY], tf.int32)

        return stream.map(parse)

    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        def decode(encoded, label):
            image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8,
                                       expand_animations=False)
            return tf.ensure_shape(image, [None, None, 3]), label

        stream = self._select_from_stream(self._records(), index, self._store_size, shuffle,
                                          seed, repeat)
        return stream.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)


def _record_problem(label: int, check) -> Optional[str]:
    if label < 0:
        return f"no {LABEL_KEY} (or a negative one)"
    if check.error is not None:
        return check.error
    if not check.tensorflow_decodable:
        return (f"unsupported image encoding ({check.format} {check.mode}); "
                f"{IMAGE_KEY} must be 8-bit PNG or JPEG")
    return None


def _remember_name(texts: Dict[int, Tuple[str, str]], label: int, name: str, where: str):
    seen = texts.get(label)
    if seen is None:
        texts[label] = (name, where)
    elif seen[0] != name:
        raise DataError(f"label {label} is called {seen[0]!r} in {seen[1]} but {name!r} in "
                        f"{where}; {CLASS_TEXT_KEY} must name each label consistently")


def _class_names(labels: np.ndarray, texts: Dict[int, Tuple[str, str]],
                 class_file: Optional[Tuple[str, Sequence[str]]]) -> List[str]:
    """Names per label: record text, then the class file, then ``class_<k>``."""
    largest = int(max(labels.max(initial=-1), max(texts, default=-1)))
    if class_file is not None:
        path, file_names = class_file
        if largest >= len(file_names):
            raise DataError(f"label {largest} is outside the class range 0..{len(file_names) - 1} "
                            f"given by {path}")
        count = len(file_names)
    else:
        file_names, count = [], largest + 1
    names = []
    for label in range(count):
        if label in texts:
            names.append(texts[label][0])
        elif label < len(file_names):
            names.append(file_names[label])
        else:
            names.append(f"class_{label}")
    if len(set(names)) != len(names):
        raise DataError(f"class names repeat: {names}")
    return names
