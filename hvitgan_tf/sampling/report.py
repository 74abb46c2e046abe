"""Human-readable results of a sampling run: the per-class table and the kept-vs-rejected grid.

``kept_vs_rejected_grid`` shows, per class, a row of kept and a row of rejected samples with the
class head's confidence printed on each, which is the quickest way to see what ``--threshold``
does to a model (and whether the class head has learned anything yet).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hvitgan_tf import imaging
from hvitgan_tf.sampling.seeds import attempt_seeds


def format_table(report) -> str:
    """The final table of ``hvitgan-tf sample``: one line per class and a total."""
    header = ("class", "requested", "generated", "kept", "attempts", "acceptance", "mean conf")
    rows = []
    for entry in report.classes:
        rows.append((entry.name, str(entry.requested), str(entry.generated), str(entry.kept),
                     str(entry.attempts), _percent(entry.acceptance),
                     "-" if math.isnan(entry.mean_confidence) else f"{entry.mean_confidence:.3f}"))
    kept = sum(e.kept for e in report.classes)
    attempts = sum(e.attempts for e in report.classes)
    conf = sum(e.confidence_sum for e in report.classes)
    rows.append(("total", str(sum(e.requested for e in report.classes)), str(report.generated),
                 str(kept), str(attempts), _percent(kept / attempts if attempts else math.nan),
                 f"{conf / kept:.3f}" if kept else "-"))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        return "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                         for i, cell in enumerate(row))

    return "\n".join([line(header), *(line(row) for row in rows)])


def _percent(value) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f} %"


def kept_vs_rejected_grid(rows: Sequence[Tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                          threshold: float, *, per_row: int = 8, cell: Optional[int] = None,
                          title: Optional[str] = None) -> np.ndarray:
    """A labelled uint8 grid: for each class a row of kept and a row of rejected images.

    Args:
        rows: ``(class name, images uint8 [N, S, S, 3], confidences [N], kept bool [N])`` per
            class; the first ``per_row`` kept and rejected images are shown.
        threshold: printed in the row labels.
    """
    gap = 2
    # Enough decimals to tell a kept confidence from a rejected one next to the threshold.
    decimals = min(6, max(3, len(f"{threshold:g}".partition(".")[2]) + 1))
    grid_rows, captions = [], []
    for name, images, confidences, kept in rows:
        images, confidences = np.asarray(images), np.asarray(confidences, np.float64)
        kept = np.asarray(kept, bool)
        for label, mask in ((f"{name} kept (p >= {threshold:g})", kept),
                            (f"{name} rejected", ~kept)):
            index = np.flatnonzero(mask)[:per_row]
            grid_rows.append((label, images[index] if len(index) else
                              np.zeros((0, *images.shape[1:]), np.uint8)))
            captions.append([f"{confidences[i]:.{decimals}f}" for i in index])
    side = max((img.shape[1] for _, img in grid_rows if len(img)), default=32)
    if cell is None:
        cell = side * max(1, -(-64 // side))
    label_width = 12 + 6 * max(len(label) for label, _ in grid_rows)
    grid = imaging.labelled_grid(grid_rows, cell=cell, gap=gap, label_width=label_width,
                                 title=title)
    # Confidence of each image in its bottom-left corner, on a dark box so it reads on tissue.
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    top = 18 if title else 0
    for r, texts in enumerate(captions):
        if not texts:
            draw.text((label_width + gap + 4, top + gap + r * (cell + gap) + cell // 2 - 5),
                      "(none)", fill=(128, 128, 128), font=font)
            continue
        y = top + gap + r * (cell + gap) + cell - 12
        for c, text in enumerate(texts):
            x = label_width + gap + c * (cell + gap)
            draw.rectangle((x, y, x + 6 * len(text) + 3, y + 11), fill=(0, 0, 0))
            draw.text((x + 2, y), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def preview_kept_vs_rejected(model, path: str, *, threshold: float, truncation: float = 1.0,
                             seed: int = 0, labels: Optional[Sequence[int]] = None,
                             per_row: int = 8, attempts: int = 64) -> str:
    """Generate attempts ``0 .. attempts-1`` of each class (the seeds ``sample`` uses for them)
    with an ``ExportedModel`` and save ``kept_vs_rejected_grid`` as a PNG at ``path``."""
    labels = list(range(len(model.class_names))) if labels is None else list(labels)
    rows = []
    for label in labels:
        seeds = attempt_seeds(seed, label, np.arange(attempts))
        outputs = model.generate(np.full(attempts, label), seeds, truncation)
        confidence = outputs["confidence"]
        rows.append((model.class_names[label], outputs["images"], confidence,
                     confidence >= threshold))
    title = (f"{model.name} v{model.version}: first {attempts} attempts per class, "
             f"threshold {threshold:g}, truncation {truncation:g}, seed {seed}")
    grid = kept_vs_rejected_grid(rows, threshold, per_row=per_row, title=title)
    return imaging.save_png(path, grid)
