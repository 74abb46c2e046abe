"""Which seed, which id: the conventions that make a sampling run reproducible and resumable.

Every image ``hvitgan-tf sample`` considers is *attempt* ``k`` (0, 1, 2, ...) of class ``c``.
Its noise seed is a pure function of ``(run seed, c, k)``::

    attempt_seed(run_seed, c, k) = splitmix64(splitmix64(splitmix64(run_seed) ^ c) ^ k) >> 1

(SplitMix64, Steele et al. 2014, the standard 64-bit integer mixer; the final shift keeps the
seed a non-negative int64, what the ``generate`` signature takes). The image itself is a pure
function of ``(c, seed, ψ)`` (docs/method.md §6.1, ``hvitgan_tf.noise``), and the exported model
computes every sample with the same shapes whatever the batch (``hvitgan_tf.export.savedmodel``),
so:

- the kept images of class ``c`` are the first ``quota`` attempts, in attempt order, whose
  confidence reaches the threshold — independent of the batch size and of how often the run
  was interrupted and resumed;
- a resumed run restarts class ``c`` at the attempt after its last kept one (attempts in
  between were rejected and would be rejected again).

Sample ids are ``<class name>-<attempt, 9 digits>`` (``tumor-000000042``): unique within a
run, sortable, and the file name of the PNG (``OUT/<class name>/<id>.png``). Everything here is
plain NumPy/Python, usable by a Beam pipeline that shards the attempts over workers.
"""
from __future__ import annotations

import re
from typing import Tuple

import numpy as np

_MASK64 = (1 << 64) - 1
ID_DIGITS = 9
_ID = re.compile(r"^(?P<name>.+)-(?P<attempt>[0-9]{%d,})$" % ID_DIGITS)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 (wraps mod 2**64)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def attempt_seeds(run_seed: int, label: int, attempts) -> np.ndarray:
    """int64 seeds of ``attempts`` (array of non-negative ints) of class ``label``."""
    attempts = np.asarray(attempts, dtype=np.int64)
    if attempts.size and attempts.min() < 0:
        raise ValueError("attempt indices must be >= 0")
    with np.errstate(over="ignore"):
        base = _splitmix64(np.uint64(int(run_seed) & _MASK64))
        base = _splitmix64(base ^ np.uint64(int(label) & _MASK64))
        mixed = _splitmix64(base ^ attempts.astype(np.uint64))
    return (mixed >> np.uint64(1)).astype(np.int64)


def attempt_seed(run_seed: int, label: int, attempt: int) -> int:
    """The int64 noise seed of attempt ``attempt`` of class ``label`` (see module docstring)."""
    return int(attempt_seeds(run_seed, label, [attempt])[0])


def sample_id(class_name: str, attempt: int) -> str:
    return f"{class_name}-{int(attempt):0{ID_DIGITS}d}"


def parse_sample_id(sample: str) -> Tuple[str, int]:
    """``(class name, attempt)`` of an id made by :func:`sample_id`; ``ValueError`` otherwise."""
    match = _ID.match(sample)
    if not match:
        raise ValueError(f"{sample!r} is not a sample id (<class>-<attempt>)")
    return match.group("name"), int(match.group("attempt"))
