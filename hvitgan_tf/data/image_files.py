"""Checking and decoding encoded image files with Pillow (no TensorFlow).

``folder:`` and ``tfrecord:`` sources check every image when they are opened, so a corrupt or
truncated file is reported with its name before training starts (docs/method.md §8), not as a decode
error deep inside a ``tf.data`` pipeline. The check fully decodes the image with the same conversion
(``to_rgb_array``) the pipeline uses for the formats TensorFlow cannot decode itself (TIFF,
16-bit, CMYK), so "passes the check" and "loads in training" are the same thing.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
from typing import Callable, Iterable, List, Optional, Tuple, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

#: File name endings read by ``folder:`` (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# (format, mode) pairs that tf.io.decode_image(channels=3) turns into the same RGB array as
# Pillow's convert("RGB"): 8-bit PNG/JPEG/BMP/GIF. Everything else is decoded with Pillow.
_TF_FORMATS = {"PNG", "JPEG", "BMP", "GIF"}
_TF_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """What opening one image found: ``error`` is None when it decoded completely."""

    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tensorflow_decodable(self) -> bool:
        """True when ``tf.io.decode_image`` gives the same pixels as ``to_rgb_array``."""
        return self.format in _TF_FORMATS and self.mode in _TF_MODES


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as uint8 ``[H, W, 3]``: grayscale is replicated, alpha dropped, 16-bit
    grayscale scaled to 8 bits (``convert("RGB")`` would clip it to white)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        values = np.clip(values / 257.0, 0, 255).round().astype(np.uint8)
        return np.repeat(values[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded bytes -> uint8 ``[H, W, 3]`` with Pillow (used inside ``tf.numpy_function``)."""
    with Image.open(io.BytesIO(bytes(data))) as image:
        return to_rgb_array(image)


def check_image(source) -> ImageCheck:
    """Fully decode ``source`` (a path or bytes) and report its size, format and mode.

    ``verify()`` catches damaged PNG chunks (CRC) cheaply; the full decode that follows catches
    truncated files of every format. Never raises for a bad image: the reason goes in ``error``.
    """
    def opened():
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)

    try:
        with opened() as image:
            image.verify()
        with opened() as image:
            image.load()
            rgb = to_rgb_array(image)
            if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
                return ImageCheck(error=f"decodes to an empty image of shape {rgb.shape}")
            return ImageCheck(width=image.width, height=image.height,
                              format=image.format or "", mode=image.mode)
    except UnidentifiedImageError:
        return ImageCheck(error="not a readable image (unknown format or corrupt header)")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        reason = str(error) or type(error).__name__
        return ImageCheck(error=f"corrupt or truncated image ({reason})")


T = TypeVar("T")
R = TypeVar("R")


def map_in_threads(function: Callable[[T], R], items: Iterable[T]) -> List[R]:
    """``[function(x) for x in items]`` on a few threads (Pillow's decoders release the GIL);
    results keep the input order."""
    items = list(items)
    if len(items) < 64:
        return [function(item) for item in items]
    workers = min(8, 2 * (os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items, chunksize=32))


#: How many bad files an error or warning names before "and N more".
NAMED_BAD_FILES = 5


def bad_files_text(bad: List[Tuple[str, str]]) -> str:
    """``"path: reason; ...; and N more"`` for errors and warnings about unreadable inputs."""
    named = "; ".join(f"{path}: {reason}" for path, reason in bad[:NAMED_BAD_FILES])
    more = len(bad) - NAMED_BAD_FILES
    return named + (f"; and {more} more" if more > 0 else "")


def common_square_size(checks: Iterable[ImageCheck]) -> Optional[int]:
    """The side length when every image is the same square size, else None."""
    sizes = {(check.width, check.height) for check in checks}
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height:
            return width
    return None
