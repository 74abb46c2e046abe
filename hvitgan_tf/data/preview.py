"""A labelled grid of real patches, one row per class (``hvitgan-tf data preview``).

The grid and the atomic PNG write are the package's shared ones (``hvitgan_tf.imaging``,
``hvitgan_tf.fileio``), so a data preview looks like the trainer's sample grids and a crash never
leaves a half-written file under the requested name. Patches are shown at their stored size
(what the model sees before resizing); sources whose images vary in size are centre-cropped and
scaled to a common display size first.
"""
from __future__ import annotations

import os
from typing import List

import numpy as np
from PIL import Image

from hvitgan_tf.data.base import DataSource
from hvitgan_tf.data.forms import DataError
from hvitgan_tf.imaging import labelled_grid, save_png

#: Display side for sources without one native size (folder/tfrecord of mixed sizes).
DISPLAY_SIZE = 96


def collect_per_class(source: DataSource, split: str, per_class: int, seed: int
                      ) -> List[List[np.ndarray]]:
    """Up to ``per_class`` uint8 images of each class, drawn in a seeded shuffled order."""
    counts = source.class_counts(split)
    wanted = [min(per_class, count) for count in counts]
    rows: List[List[np.ndarray]] = [[] for _ in counts]
    if sum(wanted):
        for image, label in source.raw_examples(split, shuffle=True, seed=seed
                                                ).as_numpy_iterator():
            if len(rows[label]) < wanted[label]:
                rows[label].append(image)
            if all(len(row) >= want for row, want in zip(rows, wanted)):
                break
    return rows


def _square(image: np.ndarray, side: int) -> np.ndarray:
    """Centre-crop to a square and scale to ``side`` (display only; the pipeline does the same
    crop before its own resize)."""
    height, width = image.shape[:2]
    if height == width == side:
        return image
    crop = min(height, width)
    top, left = (height - crop) // 2, (width - crop) // 2
    square = Image.fromarray(image[top:top + crop, left:left + crop])
    return np.asarray(square.resize((side, side), Image.BILINEAR))


def write_preview(source: DataSource, out_path: str, *, split: str = "train",
                  per_class: int = 8, seed: int = 0) -> dict:
    """Write the grid to ``out_path`` (PNG) and say what it shows."""
    if not str(out_path).lower().endswith(".png"):
        raise DataError(f"the preview is a PNG; give --out a name ending in .png, got {out_path}")
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {per_class}")
    rows = collect_per_class(source, split, per_class, seed)
    counts = source.class_counts(split)
    side = source.native_image_size or DISPLAY_SIZE
    grid_rows = [
        (f"{name} ({count} in {split})",
         np.stack([_square(image, side) for image in row]) if row
         else np.zeros([0, side, side, 3], np.uint8))
        for name, count, row in zip(source.class_names, counts, rows)
    ]
    title = (f"{source.spec}: {split} split, up to {per_class} per class, "
             + (f"{source.native_image_size} px patches" if source.native_image_size
                else f"shown at {side} px"))
    out_path = os.path.abspath(os.path.expanduser(str(out_path)))
    save_png(out_path, labelled_grid(grid_rows, title=title))
    return {"path": out_path, "split": split,
            "shown": {name: len(row) for name, row in zip(source.class_names, rows)}}
