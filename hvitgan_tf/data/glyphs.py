"""``glyphs``: a 10-class set of rendered digits, built on the spot from fonts matplotlib ships.

A GAN's learning can only be judged on data whose classes are unmistakable and whose samples
vary, and which needs no download: the demo's two stain classes are told apart by colour alone.
Each ``glyphs`` image is one digit ``0``-``9`` drawn in one of the fonts listed in ``FONTS``
(DejaVu sans, serif and monospace, their bold faces, and STIX) with a random

* size (cap height ``SIZE_RANGE`` of the image side),
* position (centre shifted by up to ``SHIFT_RATIO`` of the side per axis),
* rotation (``ROTATION_DEGREES``, small enough that a 6 stays a 6 and not a 9),
* stroke colour (any colour at least ``MIN_CONTRAST`` darker than the background), and
* background grey (``BACKGROUND_RANGE``),

rendered at ``OVERSAMPLE`` times the resolution and downscaled with a box filter, so strokes
are antialiased like a photographed glyph. Everything is a function of the image's index and
``GLYPH_SEED``: the same 6,000 images on every machine, split 80/10/10 stratified by the
seeded split of ``open_source``.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from hvitgan_tf.data.base import InMemorySource

IMAGE_SIZE = 32
NUM_IMAGES = 6000  # 600 per class
CLASS_NAMES = tuple(str(d) for d in range(10))
# Six upright faces. Twelve (with obliques, italics and the Computer Modern faces) at sizes
# 0.55-0.85, shifts of 0.12 and rotations of 20 degrees made a set that the paper's discriminator's
# class head alone fitted to only 0.22 in 400 steps (a small CNN: 0.98); this one reaches 0.59.
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf", "STIXGeneral.ttf",
)
SIZE_RANGE = (0.6, 0.85)  # glyph cap height / image side
SHIFT_RATIO = 0.08
ROTATION_DEGREES = 10.0
BACKGROUND_RANGE = (190, 255)
MIN_CONTRAST = 110  # background grey minus the stroke's brightest channel
OVERSAMPLE = 2
GLYPH_SEED = 20261202


def _font_path(name):
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


def render_glyph(digit: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """One ``[size, size, 3]`` uint8 image of ``digit``; every random choice comes from ``rng``."""
    from PIL import Image, ImageDraw

    font_name = FONTS[rng.integers(len(FONTS))]
    big = size * OVERSAMPLE
    cap_height = rng.uniform(*SIZE_RANGE) * big
    font = _truetype(font_name, int(round(cap_height)))
    background = int(rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1))
    ceiling = max(0, background - MIN_CONTRAST)
    stroke = tuple(int(c) for c in rng.integers(0, ceiling + 1, size=3))
    angle = rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES)
    shift = rng.uniform(-SHIFT_RATIO, SHIFT_RATIO, size=2) * big

    # The glyph is drawn white on black as a coverage mask, rotated about its own centre, then
    # used to blend the stroke colour over the background.
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    x = (big - (right - left)) / 2 - left + shift[0]
    y = (big - (bottom - top)) / 2 - top + shift[1]
    draw.text((x, y), str(digit), fill=255, font=font)
    mask = mask.rotate(angle, resample=Image.BILINEAR, center=(big / 2 + shift[0],
                                                              big / 2 + shift[1]))
    coverage = np.asarray(mask, np.float32) / 255.0
    # Box-filter downscale: the mean coverage of each OVERSAMPLE x OVERSAMPLE block.
    coverage = coverage.reshape(size, OVERSAMPLE, size, OVERSAMPLE).mean(axis=(1, 3))
    colour = np.asarray(stroke, np.float32)
    image = background * (1.0 - coverage[..., None]) + colour * coverage[..., None]
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _truetype(name, pixels):
    from PIL import ImageFont

    return ImageFont.truetype(_font_path(name), max(pixels, 4))


@functools.lru_cache(maxsize=1)
def glyph_images():
    """``(images uint8 [NUM_IMAGES, 32, 32, 3], labels int32 [NUM_IMAGES])``, read-only.

    Labels cycle 0..9 so every class has exactly ``NUM_IMAGES / 10`` images; image ``i`` is
    drawn from its own generator, ``default_rng([GLYPH_SEED, i])`` (about 2 s for all of them).
    """
    labels = (np.arange(NUM_IMAGES) % len(CLASS_NAMES)).astype(np.int32)
    images = np.stack([render_glyph(int(label), np.random.default_rng([GLYPH_SEED, i]))
                       for i, label in enumerate(labels)])
    for array in (images, labels):
        array.setflags(write=False)
    return images, labels


class GlyphSource(InMemorySource):
    """The built-in ``glyphs`` set (see the module docstring)."""

    kind = "glyphs"

    def __init__(self, spec="glyphs", *, split_fractions, split_seed=0, **subset):
        images, labels = glyph_images()
        super().__init__(
            spec, CLASS_NAMES, images, labels,
            split_fractions=split_fractions, split_seed=split_seed,
            description=(f"{len(labels)} digits 0-9 of {IMAGE_SIZE} px rendered from "
                         f"{len(FONTS)} matplotlib fonts with random size, position, rotation "
                         f"(±{ROTATION_DEGREES:g}°), stroke colour and background"),
            location="rendered in memory from matplotlib's bundled fonts",
            **subset,
        )
