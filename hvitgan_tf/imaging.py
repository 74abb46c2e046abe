"""Image helpers shared by training previews, data previews and sampling reports.

Images inside the package are float ``[-1, 1]``; on disk they are 8-bit PNG. The conversion is
in one place so that "what ``classify`` sees after a PNG round trip" is the same everywhere:
``to_uint8`` / ``to_float`` on NumPy arrays, ``tensor_to_uint8`` / ``tensor_to_float`` on
TensorFlow tensors (the data pipeline and the SavedModel signatures), the same rule in both.
TensorFlow is imported by the tensor functions only.
"""
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hvitgan_tf.fileio import atomic_path


def to_uint8(images):
    """``[-1, 1]`` floats -> uint8 with round-to-nearest (same rule as the SavedModel)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images):
    """uint8 -> ``[-1, 1]`` float32 (the inverse of ``to_uint8`` up to rounding)."""
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0


def tensor_to_uint8(images):
    """``to_uint8`` for a float tensor: round half to even, clip to ``[0, 255]``; a uint8 image
    taken to ``[-1, 1]`` by ``tensor_to_float`` comes back exactly."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def tensor_to_float(images):
    """``to_float`` for a tensor (uint8, or float already in ``[0, 255]``): float32 in
    ``[-1, 1]``."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def encode_png(image):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(path, image):
    """Write one uint8 ``[H, W, 3]`` image atomically."""
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")
    return path


def labelled_grid(rows, cell=None, gap=2, label_width=None, title=None):
    """A uint8 picture with one row of images per label and the label written at the left.

    Args:
        rows: sequence of ``(label, images)`` with ``images`` uint8 ``[N, H, W, 3]``.
        cell: side in pixels each image is scaled to (nearest neighbour; default: keeps small
            patches readable by scaling them up to at least 64 px).
        title: optional line of text above the grid.
    """
    rows = [(str(label), np.asarray(images)) for label, images in rows]
    if not rows:
        raise ValueError("labelled_grid needs at least one row")
    side = max(img.shape[1] for _, img in rows if len(img)) if any(len(i) for _, i in rows) \
        else 32
    if cell is None:
        cell = side * max(1, -(-64 // side))
    font = ImageFont.load_default()
    if label_width is None:
        label_width = 12 + 7 * max(len(label) for label, _ in rows)
    columns = max(1, max(len(images) for _, images in rows))
    top = 18 if title else 0
    width = label_width + columns * (cell + gap) + gap
    height = top + len(rows) * (cell + gap) + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap, 3), title, fill=(0, 0, 0), font=font)
    for r, (label, images) in enumerate(rows):
        y = top + gap + r * (cell + gap)
        draw.text((4, y + cell // 2 - 5), label, fill=(0, 0, 0), font=font)
        for c, image in enumerate(images):
            tile = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize(
                (cell, cell), Image.NEAREST)
            canvas.paste(tile, (label_width + gap + c * (cell + gap), y))
    return np.asarray(canvas)
