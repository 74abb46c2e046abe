"""Latent noise: the one place that turns per-sample seeds into generator input ``z``.

docs/method.md §6.1: sampling draws ``z`` from a standard normal truncated at ``±ψ`` by inverse-CDF
sampling, ``z = Φ⁻¹(u)`` with ``u`` uniform on ``[Φ(−ψ), Φ(ψ)]``, from a stateless RNG keyed by
the sample's seed. Training (fixed preview noise), the exported SavedModel's ``generate``
signature (docs/method.md §7) and ``hvitgan-tf sample`` all call :func:`truncated_noise`, so the
same
``(label, seed, ψ)`` gives the same image everywhere.

Why a hand-vectorised Philox instead of ``tf.random.stateless_uniform``: that op takes ONE seed
for the whole tensor, and we need one seed per row with an unknown batch size (``None`` in the
serving signature). ``tf.map_fn`` over rows works but is slow and awkward inside XLA. Philox is
counter-based, so evaluating it for ``[N seeds] x [blocks]`` at once is just integer arithmetic
on tensors. We reproduce TensorFlow's own Philox-4x32-10 stream bit for bit, including its seed
scrambling and its float64 conversion, so row ``i`` equals

    tf.random.stateless_uniform([latent_dim], seed=[seeds[i], NOISE_STREAM],
                                dtype=tf.float64, alg="philox")

(tested in ``tests/test_noise.py``). Unlike ``alg="auto_select"`` this does not depend on the
device, so CPU, GPU and TF Serving agree. Only core TF ops are used (integer multiply, shifts,
xor, casts, ``erf``/``erfinv``), all with kernels in stock TensorFlow and TF Serving.

Importing this module imports TensorFlow; keep it out of the CLI's import path until needed.
"""
from __future__ import annotations

import math

import tensorflow as tf

# Second half of the 2-word stateless seed. A fixed, documented constant so that noise drawn from
# a sample seed ``s`` cannot collide with some other stateless draw that happens to use [s, 0].
NOISE_STREAM = 0x6E6F697A  # ASCII "noiz"

# Philox-4x32-10 constants (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"),
# identical to tensorflow/core/lib/random/philox_random.h.
_PHILOX_M0 = 0xD2511F53
_PHILOX_M1 = 0xCD9E8D57
_PHILOX_W0 = 0x9E3779B9
_PHILOX_W1 = 0xBB67AE85
_PHILOX_ROUNDS = 10
# TensorFlow's fixed key for scrambling a user seed into (key, counter); see GenerateKey in
# tensorflow/core/kernels/stateless_random_ops.cc.
_SEED_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)

_MASK32 = 0xFFFFFFFF
# ψ beyond which the truncation is a no-op in float64 (see truncated_noise).
_PSI_CAP = 10.0


def _u32(value):
    return tf.constant(value, tf.uint32)


def _mulhilo(multiplier: int, x):
    """32x32 -> 64-bit product of a constant and a uint32 tensor, as (hi, lo) uint32 words."""
    product = tf.cast(x, tf.uint64) * tf.constant(multiplier, tf.uint64)
    hi = tf.cast(tf.bitwise.right_shift(product, tf.constant(32, tf.uint64)), tf.uint32)
    lo = tf.cast(tf.bitwise.bitwise_and(product, tf.constant(_MASK32, tf.uint64)), tf.uint32)
    return hi, lo


def _philox4x32(counter, key):
    """Philox-4x32-10 on broadcastable uint32 tensors.

    ``counter`` is a 4-tuple and ``key`` a 2-tuple of uint32 tensors of any broadcastable shapes;
    returns the 4 output words, each of the broadcast shape. uint32 addition wraps mod 2**32,
    which is what the key schedule needs.
    """
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(_PHILOX_ROUNDS):
        if round_index:
            k0 = k0 + _u32(_PHILOX_W0)
            k1 = k1 + _u32(_PHILOX_W1)
        hi0, lo0 = _mulhilo(_PHILOX_M0, c0)
        hi1, lo1 = _mulhilo(_PHILOX_M1, c2)
        c0, c1, c2, c3 = (
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(hi1, c1), k0),
            lo1,
            tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(hi0, c3), k1),
            lo0,
        )
    return c0, c1, c2, c3


def _split_words(value_u64):
    """uint64 tensor -> (low, high) uint32 words (arithmetic, so independent of endianness)."""
    lo = tf.cast(tf.bitwise.bitwise_and(value_u64, tf.constant(_MASK32, tf.uint64)), tf.uint32)
    hi = tf.cast(tf.bitwise.right_shift(value_u64, tf.constant(32, tf.uint64)), tf.uint32)
    return lo, hi


def _words_to_unit_double(high_word, low_word):
    """Two uint32 words -> float64 in [0, 1) with 52 random mantissa bits.

    Same construction as TensorFlow's Uint64ToDouble: 20 bits of the first word and all 32 of
    the second form the mantissa of a number in [1, 2), minus 1. The result is exactly
    ``k / 2**52`` for an integer ``k`` in ``[0, 2**52)``.
    """
    mantissa = tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(
            tf.cast(tf.bitwise.bitwise_and(high_word, _u32(0xFFFFF)), tf.uint64),
            tf.constant(32, tf.uint64),
        ),
        tf.cast(low_word, tf.uint64),
    )
    bits = tf.bitwise.bitwise_or(mantissa, tf.constant(1023 << 52, tf.uint64))
    return tf.bitcast(bits, tf.float64) - 1.0


def _per_seed_uniform(seeds, count: int, stream: int = NOISE_STREAM):
    """Row ``i``: ``count`` float64 uniforms on [0, 1) keyed by ``(seeds[i], stream)``.

    seeds: int64 ``[N]`` -> float64 ``[N, count]``. Row ``i`` is TensorFlow's Philox stream for
    the 2-word seed ``[seeds[i], stream]`` (see module docstring), so it depends on nothing but
    that seed: not on N, the other rows, or the row's position.
    """
    seed0 = tf.bitcast(tf.cast(seeds, tf.int64), tf.uint64)  # [N], two's complement like TF
    s0_lo, s0_hi = _split_words(seed0)
    s1_lo, s1_hi = _split_words(tf.constant(stream, tf.uint64))
    s1_lo = tf.broadcast_to(s1_lo, tf.shape(s0_lo))
    s1_hi = tf.broadcast_to(s1_hi, tf.shape(s0_lo))
    # Seed scrambling (TF's GenerateKey): one Philox call on the raw seed words gives the key
    # and the high half of the starting counter, so weak seeds (0, 1, 2, ...) are decorrelated.
    mix = _philox4x32(
        (s0_lo, s0_hi, s1_lo, s1_hi), tuple(_u32(k) for k in _SEED_SCRAMBLE_KEY)
    )
    key = (mix[0][:, None], mix[1][:, None])  # [N, 1] each
    # Each Philox block yields 4 words = 2 doubles; block j uses counter (j, 0, mix2, mix3).
    # j < 2**32 for any sensible latent size, so the low word never carries into the next.
    num_blocks = (count + 1) // 2
    block = tf.cast(tf.range(num_blocks), tf.uint32)[None, :]  # [1, B] (no uint32 Range kernel)
    zeros = tf.zeros_like(block)
    words = _philox4x32((block, zeros, mix[2][:, None], mix[3][:, None]), key)  # 4 x [N, B]
    first = _words_to_unit_double(words[0], words[1])  # [N, B]
    second = _words_to_unit_double(words[2], words[3])  # [N, B]
    # Interleave to stream order: element 2j is block j's first double, 2j+1 its second.
    uniform = tf.reshape(tf.stack([first, second], axis=-1), [-1, 2 * num_blocks])  # [N, 2B]
    return uniform[:, :count]


def truncated_noise(seeds, latent_dim: int, truncation=1.0):
    """Truncated-normal latent vectors, one row per seed (docs/method.md §6.1).

    Args:
        seeds: int64 (or int32) ``[N]``; row ``i`` is a pure function of ``(seeds[i], ψ_i)``,
            independent of batch size, batch composition and row position.
        latent_dim: Python int, the generator's ``latent_dim``.
        truncation: ψ, float32 ``[N]`` (one per sample) or a scalar broadcast to every row.
            Must be ``>= 0`` (a negative ψ is rejected by the CLI; here it is a precondition and
            is not checked, so it works unchanged inside a serving graph). ``0`` gives exactly
            ``z = 0``; ``inf`` gives the untruncated standard normal.

    Returns:
        float32 ``[N, latent_dim]`` with ``|z| <= ψ`` elementwise.

    Inverse-CDF sampling with the symmetric form of ``u ~ U[Φ(−ψ), Φ(ψ)]``,
    ``z = Φ⁻¹(u) = √2 · erfinv(w · erf(ψ/√2))`` with ``w = 2u' − 1`` uniform on (−1, 1): it is
    exact (no rejection loop), gives ``z = 0`` at ψ = 0 without a special case, and never
    evaluates ``erfinv(±1)``. ``w`` is built from a 52-bit integer ``k`` as
    ``(2k + 1 − 2**52) / 2**52`` — an odd multiple of ``2**-52`` — so it is exactly symmetric
    about 0 and ``|w| <= 1 − 2**-52``; for ψ = ∞ the largest ``|z|`` is about 8.2 instead of inf.
    Everything runs in float64 and is rounded once to float32 at the end, then clipped to ±ψ so
    erf/erfinv rounding can never leave the truncation interval.
    """
    latent_dim = int(latent_dim)
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    seeds = tf.convert_to_tensor(seeds)
    if not seeds.dtype.is_integer:
        raise TypeError(f"seeds must be an integer tensor, got {seeds.dtype.name}")
    seeds = tf.reshape(tf.cast(seeds, tf.int64), [-1])  # [N]
    psi = tf.cast(tf.convert_to_tensor(truncation), tf.float32)
    psi = tf.reshape(psi, [-1, 1])  # [N, 1], or [1, 1] for a scalar ψ (broadcasts over rows)

    unit = _per_seed_uniform(seeds, latent_dim)  # [N, D] float64, k / 2**52
    # 2u - 1 + 2**-52 is exact in float64 (result is an odd multiple of 2**-52 below 1).
    w = 2.0 * unit - 1.0 + 2.0**-52  # [N, D], symmetric on (-1, 1)
    # TF's float64 erf returns NaN at +inf, so cap ψ first. erf(ψ/√2) is already exactly 1.0 in
    # float64 from ψ ≈ 8.3 on (and |z| <= 8.2 anyway), so the cap changes no value.
    psi64 = tf.minimum(tf.cast(psi, tf.float64), _PSI_CAP)
    half_width = tf.math.erf(psi64 / math.sqrt(2.0))  # [N, 1] = 2Φ(ψ) - 1 = Φ(ψ) - Φ(-ψ)
    z = math.sqrt(2.0) * tf.math.erfinv(w * half_width)  # [N, D] float64
    z = tf.clip_by_value(tf.cast(z, tf.float32), -psi, psi)
    # ψ = 0 already gives ±0.0 (the sign of w survives erfinv); make it a plain +0.0.
    return tf.where(psi > 0.0, z, tf.zeros_like(z))
