"""The ``--data`` strings a user can write, and the checks that need no TensorFlow.

docs/method.md §8 names five source forms. This module parses a spec string into ``(kind,
argument)`` and validates the subsetting options; it imports no TensorFlow so that ``hvitgan-tf
<cmd> --help`` and the click option callbacks stay fast.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Tuple

from hvitgan_tf.errors import UserError

#: form -> one-line description; the order is the order shown in help texts and errors.
SOURCE_FORMS = {
    "demo": "built-in IHC patches from scikit-image: dab_negative / dab_positive (default)",
    "glyphs": "built-in digits 0-9 rendered from matplotlib's fonts (10 classes, 32 px)",
    "tfds:patch_camelyon": "PatchCamelyon from an existing TensorFlow Datasets copy (--data-dir)",
    "pcam-h5:DIR": "PCam's camelyonpatch_level_2_split_*_{x,y}.h5 files (gunzipped), streamed",
    "folder:DIR": "one sub-folder of PNG/JPEG/TIFF images per class",
    "tfrecord:GLOB": "tf.train.Example shards (image/encoded, image/class/label), as from 'sample'",
}

#: Every source serves these three splits, in this order.
SPLIT_NAMES = ("train", "validation", "test")

#: Default seeded stratified split for sources that come without splits (demo, folder, tfrecord).
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)

_PREFIXES = ("tfds", "pcam-h5", "folder", "tfrecord")
#: Sources that ship with the package (no location to give).
BUILT_IN = ("demo", "glyphs")


class DataError(UserError, ValueError):
    """Bad data or a bad data option; the message names the file and the problem."""


def source_forms_text() -> str:
    """The valid forms as one comma-separated list, for error messages."""
    return ", ".join(SOURCE_FORMS)


def parse_source_spec(spec: str) -> Tuple[str, str]:
    """Split ``spec`` into ``(kind, argument)``: ``"folder:/x"`` -> ``("folder", "/x")``.

    ``kind`` is one of ``demo``, ``glyphs``, ``tfds``, ``pcam-h5``, ``folder``, ``tfrecord``.
    Paths get ``~`` expanded. Anything else raises a ``DataError`` that lists the valid forms.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty data source; use one of: {source_forms_text()}")
    spec = spec.strip()
    if spec in BUILT_IN:
        return spec, ""
    prefix, sep, argument = spec.partition(":")
    if sep and prefix in _PREFIXES:
        if not argument:
            raise DataError(f"data source {spec!r} needs a value after '{prefix}:'; "
                            f"use one of: {source_forms_text()}")
        if prefix != "tfds":
            argument = os.path.expanduser(argument)
        return prefix, argument
    hint = ""
    if os.path.isdir(os.path.expanduser(spec)):
        hint = f" (to read the directory {spec!r} as class sub-folders, write 'folder:{spec}')"
    raise DataError(f"unknown data source {spec!r}{hint}; use one of: {source_forms_text()}")


def check_split_fractions(split_fractions: Sequence[float]) -> Tuple[float, float, float]:
    """Three non-negative numbers (train, validation, test) summing to 1, with train > 0."""
    try:
        fractions = tuple(float(f) for f in split_fractions)
    except (TypeError, ValueError):
        raise DataError(f"split_fractions must be three numbers, got {split_fractions!r}") from None
    if len(fractions) != 3:
        raise DataError(f"split_fractions needs 3 values (train, validation, test), "
                        f"got {list(fractions)}")
    if min(fractions) < 0 or fractions[0] <= 0 or not math.isclose(sum(fractions), 1.0,
                                                                     abs_tol=1e-6):
        raise DataError(f"split_fractions must be >= 0, with train > 0, and sum to 1; "
                        f"got {list(fractions)}")
    return fractions


def check_subset_options(fraction: Optional[float], limit: Optional[int]) -> None:
    """``fraction`` in (0, 1], ``limit`` >= 1, never both (docs/method.md §8). The class-count and
    split-size checks need the opened source and happen in ``open_source``."""
    if fraction is not None and limit is not None:
        raise DataError("give --fraction or --limit, not both")
    if fraction is not None and not (0.0 < float(fraction) <= 1.0):
        raise DataError(f"--fraction must be in (0, 1], got {fraction}")
    if limit is not None and (int(limit) != limit or int(limit) < 1):
        raise DataError(f"--limit must be a positive whole number, got {limit}")
