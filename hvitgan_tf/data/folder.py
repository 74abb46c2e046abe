"""``folder:DIR``: one sub-folder of images per class (docs/method.md §8), as ``sample`` writes
them.

Layout: ``DIR/<class_name>/**/*.{png,jpg,jpeg,tif,tiff}`` (any case). Class names are the
sub-folder names, sorted, so the label of a class is its position in that order. Hidden entries
(names starting with ``.``), files directly in DIR (e.g. ``manifest.csv``) and files with other
endings are ignored.

Every image is fully decoded once when the source opens (a few threads; about 0.1 ms for a
96 px PNG), so a corrupt or truncated file is reported by path before training starts. By default
the first bad files end the open with a ``DataError``; with ``skip_bad=True`` they are left out,
one warning names them and ``source.skipped`` lists them. The check also records each image's
size: ``native_image_size`` is that size when every image is the same square, else ``None``.

Grayscale, palette and RGBA images become RGB (alpha is dropped, not composited), 16-bit
images are scaled to 8 bits, and ``describe()["file_kinds"]`` says how many files of each kind
were found and what they became. Images of any size from ``MIN_IMAGE_SIDE`` (8 px) on the short
side up are centre-cropped to a square and resized to the model size by the pipeline; smaller
ones are bad files like corrupt ones. 8-bit PNG and JPEG are decoded by TensorFlow in parallel;
TIFF and other modes go through Pillow.

No splits on disk: ``open_source`` makes a seeded stratified split (default 80/10/10).
"""
from __future__ import annotations

import logging
import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf

from hvitgan_tf.data.base import AUTOTUNE, DataSource, SplitIndex, split_rule_text
from hvitgan_tf.data.forms import DataError
from hvitgan_tf.data.image_files import (IMAGE_EXTENSIONS, bad_files_text, check_image,
                                         common_square_size, decode_rgb, file_kinds,
                                         map_in_threads)

logger = logging.getLogger(__name__)

def list_class_images(directory: str) -> List[Tuple[str, List[str]]]:
    """``[(class_name, sorted image paths)]`` for each class sub-folder, sorted by name."""
    entries = sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))
    class_dirs = [entry for entry in entries if os.path.isdir(os.path.join(directory, entry))]
    classes = []
    for name in class_dirs:
        paths = []
        for root, dirs, files in os.walk(os.path.join(directory, name)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            paths.extend(os.path.join(root, f) for f in sorted(files)
                         if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
        classes.append((name, paths))
    return classes


class FolderSource(DataSource):
    """Images in class sub-folders (see the module docstring)."""

    kind = "folder"

    def __init__(self, spec: str, directory: str, *, skip_bad: bool = False, split_fractions,
                 split_seed: int = 0, **subset):
        if not os.path.isdir(directory):
            raise DataError(f"{spec}: directory {directory} does not exist")
        classes = list_class_images(directory)
        if not classes:
            loose = [f for f in os.listdir(directory) if f.lower().endswith(IMAGE_EXTENSIONS)]
            hint = (f"; it has {len(loose)} images directly inside, move them into one "
                    "sub-folder per class" if loose else "")
            raise DataError(f"{directory} is empty: no class sub-folders (expected "
                            f"{directory}/<class_name>/*.png){hint}")
        if len(classes) == 1:
            raise DataError(f"{directory} has only one class folder ({classes[0][0]}); "
                            "a conditional GAN needs at least 2 classes")
        empty = [os.path.join(directory, name) for name, paths in classes if not paths]
        if empty:
            raise DataError(f"class folder(s) without images ({', '.join(IMAGE_EXTENSIONS)}): "
                            f"{', '.join(empty)}")

        paths = [path for _, class_paths in classes for path in class_paths]
        labels = np.array([label for label, (_, class_paths) in enumerate(classes)
                           for _ in class_paths], dtype=np.int32)
        checks = map_in_threads(check_image, paths)
        bad = [(path, check.error) for path, check in zip(paths, checks) if not check.ok]
        if bad and not skip_bad:
            raise DataError(f"{len(bad)} bad image file(s) in {directory}: "
                            f"{bad_files_text(bad)} (use --skip-bad to leave them out)")
        if bad:
            logger.warning("skipped %d bad image file(s) of %d in %s: %s", len(bad),
                           len(paths), directory, bad_files_text(bad))
            good = np.array([check.ok for check in checks])
            paths = [path for path, ok in zip(paths, good) if ok]
            checks = [check for check in checks if check.ok]
            labels = labels[good]
        class_names = [name for name, _ in classes]
        super().__init__(
            spec, class_names, common_square_size(checks),
            description=f"{len(paths)} images in {len(class_names)} class folders",
            location=os.path.abspath(directory),
            split_rule=split_rule_text(split_fractions, split_seed),
            skipped=bad,
            file_kinds=file_kinds(paths, checks),
            **subset,
        )
        self._check_classes_present(labels, f"{directory} after skipping bad files")
        self._paths = np.array(paths, dtype=object)
        self._pillow_only = np.array([not check.tensorflow_decodable for check in checks])
        self._splits = self._split_all(labels, split_fractions, split_seed)

    def _build_index(self, split: str) -> SplitIndex:
        return self._splits[split]

    def _read(self, index: SplitIndex, shuffle: bool, seed: int,
              repeat: bool = False) -> tf.data.Dataset:
        paths = tf.constant(self._paths.astype(str))
        pillow_only = tf.constant(self._pillow_only)
        any_pillow, all_pillow = bool(self._pillow_only.any()), bool(self._pillow_only.all())

        def with_pillow(data):
            image = tf.numpy_function(decode_rgb, [data], tf.uint8, name="decode_with_pillow")
            return tf.ensure_shape(image, [None, None, 3])

        def with_tensorflow(data):
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
            return tf.ensure_shape(image, [None, None, 3])

        def load(position, label):
            data = tf.io.read_file(tf.gather(paths, position))
            if all_pillow:
                image = with_pillow(data)
            elif not any_pillow:
                image = with_tensorflow(data)
            else:
                image = tf.cond(tf.gather(pillow_only, position),
                                lambda: with_pillow(data), lambda: with_tensorflow(data))
            return image, label

        return self._positions_dataset(index, shuffle, seed, repeat).map(
            load, num_parallel_calls=AUTOTUNE, deterministic=True)
