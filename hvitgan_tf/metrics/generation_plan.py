"""The fixed latents of an FID evaluation: which labels and seeds the generated side uses.

Labels follow the class prior of the real side, so that FID measures image quality rather than
a class-mix mismatch; seeds are consecutive, so the same plan always scores the same images.
NumPy only; shared by ``hvitgan-tf evaluate`` and the validation FID of training.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from hvitgan_tf.errors import UserError


def label_quotas(class_counts: Sequence[int], total: int) -> np.ndarray:
    """Images per class when ``total`` are drawn in proportion to ``class_counts``.

    Largest-remainder rounding (``splitting.proportional_quotas``); ``total`` may exceed the
    counts' sum (generated images are not drawn from a finite pool).
    """
    from hvitgan_tf.data.splitting import proportional_quotas

    counts = np.asarray(class_counts, dtype=np.int64)
    if total < 1:
        raise UserError(f"the number of samples must be >= 1, got {total}")
    if counts.sum() <= 0:
        raise UserError("cannot draw labels in proportion to empty class counts")
    # Scaling every count by `total` keeps the proportions and makes the pool large enough.
    return proportional_quotas(counts * int(total), int(total))


def generation_plan(class_counts: Sequence[int], total: int, first_seed: int = 0
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """``(labels int32 [N], seeds int64 [N])``: the fixed latents of an FID evaluation.

    Labels follow ``label_quotas`` (grouped by class); seeds are ``first_seed + i``, so the
    same call always scores the same images (docs/method.md §6.1: an image is a pure function of its
    label, seed and ψ).
    """
    quotas = label_quotas(class_counts, total)
    labels = np.repeat(np.arange(len(quotas), dtype=np.int32), quotas)
    seeds = np.arange(int(first_seed), int(first_seed) + len(labels), dtype=np.int64)
    return labels, seeds
