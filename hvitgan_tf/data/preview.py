"""A labelled grid of real patches, one row per class (``hvitgan-tf data preview``).

Drawn with matplotlib's object API on an Agg canvas (no pyplot, so no global backend state), at
each source's stored size: what the model will see before resizing. The PNG is written under a
temporary name in the target directory and renamed into place, so a crash never leaves a
half-written file under the requested name.
"""
from __future__ import annotations

import os
from typing import List

import numpy as np

from hvitgan_tf.data.base import DataSource
from hvitgan_tf.data.forms import DataError


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


def write_preview(source: DataSource, out_path: str, *, split: str = "train",
                  per_class: int = 8, seed: int = 0) -> dict:
    """Write the grid to ``out_path`` (PNG) and say what it shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not str(out_path).lower().endswith(".png"):
        raise DataError(f"the preview is a PNG; give --out a name ending in .png, got {out_path}")
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got {per_class}")
    rows = collect_per_class(source, split, per_class, seed)
    counts = source.class_counts(split)

    cell = 1.1  # inches per patch
    figure = Figure(figsize=(1.9 + cell * per_class, 0.5 + cell * len(rows)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), per_class, squeeze=False)
    for label, (row, row_axes) in enumerate(zip(rows, axes)):
        for column, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if column < len(row):
                ax.imshow(row[column], interpolation="nearest")
            else:
                for spine in ax.spines.values():
                    spine.set_visible(False)
        row_axes[0].set_ylabel(f"{source.class_names[label]}\n({counts[label]} in {split})",
                               rotation=0, ha="right", va="center", fontsize=10)
    size = source.native_image_size
    figure.suptitle(f"{source.spec}: {split} split, up to {per_class} per class"
                    + (f", {size} px patches" if size else ""), fontsize=11)
    figure.subplots_adjust(left=1.7 / figure.get_figwidth(), right=0.99, bottom=0.02,
                           top=1 - 0.45 / figure.get_figheight(), wspace=0.05, hspace=0.08)

    out_path = os.path.abspath(os.path.expanduser(str(out_path)))
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    temporary = os.path.join(os.path.dirname(out_path),
                             f".{os.path.basename(out_path)}.{os.getpid()}.tmp")
    try:
        figure.savefig(temporary, format="png")
        os.replace(temporary, out_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return {"path": out_path, "split": split,
            "shown": {name: len(row) for name, row in zip(source.class_names, rows)}}
