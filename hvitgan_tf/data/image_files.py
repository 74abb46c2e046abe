"""Checking and decoding encoded image files with Pillow (no TensorFlow).

``folder:`` and ``tfrecord:`` sources check every image when they are opened, so a corrupt or
truncated file is reported with its name before training starts (docs/method.md §8), not as a decode
error deep inside a ``tf.data`` pipeline. The check fully decodes the image with the same conversion
(``to_rgb_array``) the pipeline uses for the formats TensorFlow cannot decode itself (TIFF,
16-bit, CMYK), so "passes the check" and "loads in training" are the same thing.

The check also says what each file holds (``ImageCheck.kind``, e.g. "16-bit grayscale PNG") and
what it becomes (``ImageCheck.conversion``), so ``data inspect`` can report both, and refuses
images smaller than ``MIN_IMAGE_SIDE`` (see there).
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

#: File name endings read by ``folder:`` (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

# (format, mode) pairs that tf.io.decode_image(channels=3) turns into the same RGB array as
# Pillow's convert("RGB"): 8-bit PNG/JPEG/BMP/GIF. Everything else is decoded with Pillow.
_TF_FORMATS = {"PNG", "JPEG", "BMP", "GIF"}
_TF_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}

#: Images smaller than this on their short side are refused (named, or left out with
#: ``--skip-bad``). Every image is resized to the model's size, and the smallest model is 16 px
#: (``image_size`` is a multiple of 16), so an 8 px patch is at most doubled there; below that a
#: file holds a few colours rather than tissue (a 1x1 image, an icon, a thumbnail written by
#: mistake) and upscaling it would train the GAN on flat blocks.
MIN_IMAGE_SIDE = 8

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GRAY_16 = ("I;16", "I;16L", "I;16B", "I;16N")
# Pillow mode -> (what a file of that mode holds, what ``to_rgb_array`` makes of it; None: as is)
_MODES = {
    "RGB": ("RGB", None),
    "RGBA": ("RGBA", "8-bit RGB (alpha dropped, not composited)"),
    "L": ("grayscale", "8-bit RGB (grey in all three channels)"),
    "LA": ("grayscale + alpha", "8-bit RGB (grey in all three channels, alpha dropped)"),
    "1": ("black-and-white", "8-bit RGB (0 or 255)"),
    "P": ("palette", "8-bit RGB (the palette's colours)"),
    "PA": ("palette + alpha", "8-bit RGB (the palette's colours, alpha dropped)"),
    "I": ("32-bit integer grayscale", "8-bit RGB (value / 257, clipped at 255)"),
    "F": ("32-bit float grayscale", "8-bit RGB (values clipped to 0..255)"),
    **{mode: ("grayscale", "8-bit RGB (value / 257, grey in all three channels)")
       for mode in _GRAY_16},
}


@dataclasses.dataclass(frozen=True)
class ImageCheck:
    """What opening one image found: ``error`` is None when it decoded completely."""

    width: int = 0
    height: int = 0
    format: str = ""
    mode: str = ""
    bits: int = 8  # bits per sample as stored (a 16-bit RGB PNG still has Pillow mode "RGB")
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def kind(self) -> str:
        """What the file holds: ``"8-bit RGB PNG"``, ``"16-bit grayscale PNG"``, ``"CMYK JPEG"``."""
        if self.mode.startswith("I") and self.bits == 16:
            name, bits = "grayscale", "16-bit "
        else:
            name = _MODES.get(self.mode, (self.mode, None))[0]
            bits = "" if self.mode in ("1", "P", "PA", "I", "F", "CMYK") else f"{self.bits}-bit "
        return f"{bits}{name} {self.format}".strip()

    @property
    def conversion(self) -> Optional[str]:
        """What ``to_rgb_array`` turns the file into; None for 8-bit RGB, which is kept as is."""
        if self.mode in ("RGB", "RGBA") and self.bits == 16:
            # Pillow and tf.io.decode_image(dtype=uint8) both keep the high byte.
            return ("8-bit RGB (the high byte of each channel"
                    + (", alpha dropped)" if self.mode == "RGBA" else ")"))
        if self.mode.startswith("I") and self.bits == 16:
            return _MODES["I;16"][1]
        if self.mode == "RGB" and self.bits == 8:
            return None
        return _MODES.get(self.mode, (None, "8-bit RGB (Pillow's conversion)"))[1]

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


def _bits_per_sample(image: Image.Image, data: bytes) -> int:
    if data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR":
        return data[24]  # PNG spec §11.2.2: IHDR holds width, height, then the bit depth
    if image.mode in _GRAY_16:
        return 16
    return {"1": 1, "I": 32, "F": 32}.get(image.mode, 8)


def check_image(source) -> ImageCheck:
    """Fully decode ``source`` (a path or bytes) and report its size, format, mode and bit
    depth.

    ``verify()`` catches damaged PNG chunks (CRC) cheaply; the full decode that follows catches
    truncated files of every format. Never raises for a bad image: the reason goes in ``error``
    (also for an image smaller than ``MIN_IMAGE_SIDE``).
    """
    try:
        if isinstance(source, bytes):
            data = source
        else:
            with open(source, "rb") as handle:
                data = handle.read()
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = to_rgb_array(image)
            if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
                return ImageCheck(error=f"decodes to an empty image of shape {rgb.shape}")
            check = ImageCheck(width=image.width, height=image.height,
                               format=image.format or "", mode=image.mode,
                               bits=_bits_per_sample(image, data))
    except UnidentifiedImageError:
        return ImageCheck(error="not a readable image (unknown format or corrupt header)")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        reason = str(error) or type(error).__name__
        return ImageCheck(error=f"corrupt or truncated image ({reason})")
    if min(check.width, check.height) < MIN_IMAGE_SIDE:
        return dataclasses.replace(check, error=(
            f"too small: {check.width}x{check.height} px (images need at least "
            f"{MIN_IMAGE_SIDE} px on the short side; larger ones are resized to the model's "
            "size)"))
    return check


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


def file_kinds(items: Sequence[str], checks: Sequence[ImageCheck]) -> List[Dict]:
    """What the good files hold, grouped: ``[{"found", "count", "converted_to", "example"}]``,
    most frequent first; ``converted_to`` is None for 8-bit RGB (read as is)."""
    counts = collections.Counter(check.kind for check in checks if check.ok)
    examples, conversions = {}, {}
    for item, check in zip(items, checks):
        if check.ok and check.kind not in examples:
            examples[check.kind], conversions[check.kind] = item, check.conversion
    return [{"found": kind, "count": count, "converted_to": conversions[kind],
             "example": examples[kind]} for kind, count in counts.most_common()]


def common_square_size(checks: Iterable[ImageCheck]) -> Optional[int]:
    """The side length when every image is the same square size, else None."""
    sizes = {(check.width, check.height) for check in checks}
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height:
            return width
    return None
