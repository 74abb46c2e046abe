"""Differentiable augmentation (DiffAugment) for everything the critic sees (docs/method.md §5).

One explicit object with named ops, applied identically to real and fake images inside the
training step. Every op is differentiable w.r.t. the image to any order, because the WGAN-GP
penalty (docs/method.md §4) differentiates ``∇_x̂ D(A(x̂))`` once more w.r.t. the critic's weights.

Randomness is separated from the maths so the trainer owns it::

    aug = DiffAugment("color,translation,cutout,scale,rotation")
    params = aug.sample_params(global_batch, image_size, seed)  # dict, leading dim = batch
    out = aug.apply(images, params)                              # deterministic given params
    out = aug(images, seed)                                      # sample + apply

Row ``i`` of every parameter tensor is what image ``i`` gets, so a replica that holds rows
``a:b`` of a global batch applies ``DiffAugment.slice_params(params, a, b)`` and gets exactly
the rows a single device would produce.

Conventions (images in ``[-1, 1]``; the maths runs in float32 and the result is cast back to
the input dtype, so bfloat16 works):

- **colour** follows the original DiffAugment (Zhao et al. 2020), which also works on
  ``[-1, 1]`` images: brightness *adds* ``U(-0.5, 0.5)`` in ``[-1, 1]`` units (±1/4 of the
  range), saturation scales each pixel's deviation from its channel mean by ``U(0, 2)``, contrast
  scales each image's deviation from its global mean by ``U(0.5, 1.5)``. Saturation and contrast
  are about means, so they are the same in any affine pixel scale; only brightness depends on it.
  Nothing is clipped (clipping would zero the gradient): outputs can leave ``[-1, 1]``.
- **fill**: pixels uncovered by translation, scale, small rotation, and the cutout square get
  ``fill_value``, default ``0.0`` — the middle of ``[-1, 1]``, i.e. mid-grey. This is the
  "zero" of docs/method.md §5 and what the original implementation does in the same input space. We
  keep it rather than black (``-1``, never seen in H&E) or white (``+1``, the glass background of a
  slide, which would make an artefact look like real tissue-free area).
- **geometry**: pixel ``i`` has its centre at coordinate ``i``; the image centre is
  ``(size - 1) / 2``. ``rotation`` draws one of the 8 symmetries of the square (the bit
  encoding is documented in ``_apply_rotation``); ``rotation_small`` angles are
  counter-clockwise as displayed, like ``np.rot90``.

Only core TensorFlow ops (gathers, ``where``, arithmetic, stateless random); no
tensorflow-addons (cannot import under Keras 3) and no ``ImageProjectiveTransformV3``: its
registered image gradient warps the upstream gradient by the inverse transform, which is not
the adjoint of bilinear sampling (checked: for a 1.13x zoom of a 16 px image the dot-product
test ``<Ax, y> = <x, A^T y>`` is off by ~20 %), so the critic would be trained on a wrong
penalty gradient. Our bilinear sampler is made of gathers, whose gradients are exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple, Union

import keras
import tensorflow as tf

from hvitgan_tf.errors import UserError
from hvitgan_tf.training.config import PAPER_DIFFAUG

#: The layer's own default: all five operations, the paper's policy. Training defaults to
#: ``training.config.DEFAULT_DIFFAUG`` instead (docs/method.md §11.3).
DEFAULT_POLICY = PAPER_DIFFAUG

# docs/method.md §5 numbers, in one place.
BRIGHTNESS_RANGE = (-0.5, 0.5)  # added, in [-1, 1] units
SATURATION_RANGE = (0.0, 2.0)  # multiplies deviation from the per-pixel channel mean
CONTRAST_RANGE = (0.5, 1.5)  # multiplies deviation from the per-image mean
TRANSLATION_RATIO = 1.0 / 8.0  # max integer shift per axis, as a fraction of the size
CUTOUT_RATIO = 0.5  # side of the cutout square, as a fraction of the size
SCALE_RANGE = (0.8, 1.2)  # isotropic zoom factor about the centre
SMALL_ROTATION_MAX_DEGREES = 15.0  # `rotation_small` only; assumed, not from the paper

Params = Dict[str, tf.Tensor]


class PolicyError(UserError, ValueError):
    """An augmentation policy string that names an unknown or repeated op."""


# --------------------------------------------------------------------------------------------
# Random parameters. Each random quantity owns a fixed column of one block of random bits, so
# adding or removing an op from the policy does not change the other ops' draws. Never renumber
# these: it would silently change every seeded run.
_STREAMS = (
    "brightness", "saturation", "contrast", "translation_y", "translation_x",
    "cutout_row", "cutout_col", "scale", "rotation", "angle",
)
_BITS = 24  # resolution of every draw


class _RandomBits:
    """``_BITS``-bit uniform integers for every stream of a batch, from ONE Philox call.

    A draw per stream (fold-in + range reduction) cost about a hundred graph ops each, and the
    training step samples three parameter sets per critic update; one ``[batch, streams]``
    block keeps the traced graph small. Philox fills the block row-major from a counter, so row
    ``i`` does not depend on the batch size. Integer draws (not float ones) because XLA's float
    path gives different numbers from the CPU/GPU kernels while the integer path agrees.
    """

    def __init__(self, seed, batch):
        self.block = tf.random.stateless_uniform(
            tf.stack([batch, len(_STREAMS)]), seed=seed, minval=0, maxval=2**_BITS,
            dtype=tf.int32, alg="philox")  # [N, streams]

    def column(self, name, shape):
        return tf.reshape(self.block[:, _STREAMS.index(name)], shape)


def _randint(bits, name, shape, low, high_inclusive):
    """Integers uniform on [low, high_inclusive] by multiply-shift (bias < range / 2^24)."""
    span = tf.constant(high_inclusive - low + 1, tf.int64)
    raw = tf.cast(bits.column(name, shape), tf.int64)
    return tf.cast(low + tf.bitwise.right_shift(raw * span, _BITS), tf.int32)


def _uniform(bits, name, shape, low, high):
    """float32 U[low, high) with 24-bit resolution."""
    raw = bits.column(name, shape)
    return low + (high - low) * (tf.cast(raw, tf.float32) * 2.0**-_BITS)


# --------------------------------------------------------------------------------------------
# Resampling primitives. Everything is a gather plus masks and weights: gathers with batch_dims
# are differentiable to any order (the gradient of a gather is a segment sum, whose gradient is
# a gather again), and linear interpolation built from them has the exact adjoint as gradient.
# Axis-aligned ops (translation, scale) gather whole rows or columns, which is several times
# faster than gathering single pixels. Out-of-range positions are blended with the fill by
# multiplying with a 0/1 mask: a broadcasting `tf.where` costs ~4x more on CPU (measured).


def _fill_outside(values, inside, fill_value):
    """values where inside (a 0/1 float mask broadcastable to values), fill_value elsewhere."""
    if fill_value == 0.0:
        return values * inside
    return values * inside + fill_value * (1.0 - inside)


def _gather_axis(images, index, axis, fill_value):
    """Per-sample reindexing of rows (axis=1) or columns (axis=2), fill where out of range.

    images [N, H, W, C] float32; index int32 [N, L] with L = H (axis 1) or W (axis 2):
    out[n, i] = images[n, index[n, i]] along that axis.
    """
    size = tf.shape(images)[axis]
    inside = tf.cast((index >= 0) & (index < size), images.dtype)  # [N, L]
    values = tf.gather(images, tf.clip_by_value(index, 0, size - 1), axis=axis, batch_dims=1)
    inside = inside[:, :, None, None] if axis == 1 else inside[:, None, :, None]
    return _fill_outside(values, inside, fill_value)


def _linear_resample_axis(images, coords, axis, fill_value):
    """Linear interpolation along one axis at float source coordinates coords [N, L].

    Outside the image the fill value takes part in the interpolation like a pixel would, so
    content fades into the fill over one pixel instead of being cut. Integer coordinates give
    the source pixels exactly (weights 1 and 0). Rows then columns is exactly bilinear.
    """
    lower = tf.floor(coords)
    weight = coords - lower  # [N, L]
    weight = weight[:, :, None, None] if axis == 1 else weight[:, None, :, None]
    lower = tf.cast(lower, tf.int32)
    return (_gather_axis(images, lower, axis, fill_value) * (1.0 - weight)
            + _gather_axis(images, lower + 1, axis, fill_value) * weight)


def _permute_pixels(images, src_y, src_x):
    """out[n, i, j] = images[n, src_y[n,i,j], src_x[n,i,j]]; indices must be in range.

    images [N, H, W, C]; src_y, src_x int32 [N, H, W] -> [N, H, W, C].
    """
    shape = tf.shape(images)
    n, w, c = shape[0], shape[2], shape[3]
    flat_images = tf.reshape(images, [n, -1, c])  # [N, H*W, C]
    flat_index = tf.reshape(src_y * w + src_x, [n, -1])  # [N, H*W]
    values = tf.gather(flat_images, flat_index, batch_dims=1)  # [N, H*W, C]
    return tf.reshape(values, shape)  # [N, H, W, C]


def _gather_pixels(images, src_y, src_x, fill_value):
    """Like _permute_pixels, with fill_value wherever (src_y, src_x) is outside the image."""
    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    inside = (src_y >= 0) & (src_y < h) & (src_x >= 0) & (src_x < w)  # [N, H, W]
    values = _permute_pixels(images, tf.clip_by_value(src_y, 0, h - 1),
                             tf.clip_by_value(src_x, 0, w - 1))
    return _fill_outside(values, tf.cast(inside, images.dtype)[..., None], fill_value)


def _bilinear_sample(images, src_y, src_x, fill_value):
    """2-D bilinear interpolation at float source coordinates src_y, src_x [N, H, W].

    Same fill convention as _linear_resample_axis; for maps that are not axis-aligned.
    """
    y0 = tf.floor(src_y)
    x0 = tf.floor(src_x)
    wy = (src_y - y0)[..., None]  # [N, H, W, 1]
    wx = (src_x - x0)[..., None]
    y0 = tf.cast(y0, tf.int32)
    x0 = tf.cast(x0, tf.int32)

    def corner(dy, dx):
        return _gather_pixels(images, y0 + dy, x0 + dx, fill_value)

    top = corner(0, 0) * (1.0 - wx) + corner(0, 1) * wx
    bottom = corner(1, 0) * (1.0 - wx) + corner(1, 1) * wx
    return top * (1.0 - wy) + bottom * wy


def _axis_range(images, axis):
    """[1, L] int32 positions 0..L-1 along axis 1 (rows) or 2 (columns)."""
    return tf.range(tf.shape(images)[axis])[None, :]


def _centre(size):
    return (tf.cast(size, tf.float32) - 1.0) / 2.0


# --------------------------------------------------------------------------------------------
# The ops. Each is a (sample, apply) pair: sample(bits, batch, height, width) -> dict of
# tensors with leading dim batch; apply(images float32 [N,H,W,C], params, fill) -> same shape.


def _sample_color(bits, batch, height, width):
    return {
        "brightness": _uniform(bits, "brightness", [batch], *BRIGHTNESS_RANGE),
        "saturation": _uniform(bits, "saturation", [batch], *SATURATION_RANGE),
        "contrast": _uniform(bits, "contrast", [batch], *CONTRAST_RANGE),
    }


def _apply_color(x, params, fill_value):
    del fill_value
    per_image = lambda v: v[:, None, None, None]  # [N] -> [N, 1, 1, 1]
    x = x + per_image(params["brightness"])
    channel_mean = tf.reduce_mean(x, axis=3, keepdims=True)  # [N, H, W, 1]
    x = (x - channel_mean) * per_image(params["saturation"]) + channel_mean
    image_mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)  # [N, 1, 1, 1]
    return (x - image_mean) * per_image(params["contrast"]) + image_mean


def _max_shift(size):
    return int(size * TRANSLATION_RATIO + 0.5)  # 32 px -> 4, 96 px -> 12


def _sample_translation(bits, batch, height, width):
    # [N, 2] int32 (dy, dx): content moves down by dy rows and right by dx columns.
    dy = _randint(bits, "translation_y", [batch, 1], -_max_shift(height), _max_shift(height))
    dx = _randint(bits, "translation_x", [batch, 1], -_max_shift(width), _max_shift(width))
    return {"translation": tf.concat([dy, dx], axis=1)}


def _apply_translation(x, params, fill_value):
    shift = tf.cast(params["translation"], tf.int32)  # [N, 2]
    x = _gather_axis(x, _axis_range(x, 1) - shift[:, :1], 1, fill_value)  # row i <- i - dy
    return _gather_axis(x, _axis_range(x, 2) - shift[:, 1:], 2, fill_value)  # col j <- j - dx


def _cutout_size(size):
    """Side of the cutout square along an axis of `size` pixels (int or int32 tensor)."""
    return tf.cast(tf.cast(size, tf.float32) * CUTOUT_RATIO + 0.5, tf.int32)  # 16 -> 8, 96 -> 48


def _sample_cutout(bits, batch, height, width):
    # [N, 2] int32 (row, col) of the square's centre, anywhere in the image: squares near a
    # border are clipped by it, as in the original DiffAugment.
    cy = _randint(bits, "cutout_row", [batch, 1], 0, height - 1)
    cx = _randint(bits, "cutout_col", [batch, 1], 0, width - 1)
    return {"cutout_center": tf.concat([cy, cx], axis=1)}


def _apply_cutout(x, params, fill_value):
    centre = tf.cast(params["cutout_center"], tf.int32)  # [N, 2]

    def covered(axis):  # [N, L] bool: positions along `axis` inside the square's extent
        side = _cutout_size(tf.shape(x)[axis])
        start = centre[:, axis - 1:axis] - side // 2  # [N, 1]
        positions = _axis_range(x, axis)
        return (positions >= start) & (positions < start + side)

    inside = covered(1)[:, :, None] & covered(2)[:, None, :]  # [N, H, W]
    return _fill_outside(x, 1.0 - tf.cast(inside, x.dtype)[..., None], fill_value)


def _sample_scale(bits, batch, height, width):
    return {"scale": _uniform(bits, "scale", [batch], *SCALE_RANGE)}


def _apply_scale(x, params, fill_value):
    # Output pixel p shows the input at c + (p - c) / s: s > 1 magnifies (content grows and
    # its outer part leaves the frame), s < 1 shrinks it and uncovers a fill border.
    scale = params["scale"][:, None]  # [N, 1]
    for axis in (1, 2):  # separable: bilinear = linear along rows, then along columns
        centre = _centre(tf.shape(x)[axis])
        coords = centre + (tf.cast(_axis_range(x, axis), tf.float32) - centre) / scale  # [N, L]
        x = _linear_resample_axis(x, coords, axis, fill_value)
    return x


def _sample_rotation(bits, batch, height, width):
    # [N] int32 in [0, 8): one of the 8 symmetries of the square, uniformly. That is the same
    # distribution as "a random multiple of 90° plus a random flip" (docs/method.md §5): both
    # enumerate the dihedral group once. Label-preserving for tissue.
    return {"rotation": _randint(bits, "rotation", [batch], 0, 7)}


def _apply_rotation(x, params, fill_value):
    """Dihedral transform from the bits of r = 4 * transpose + 2 * flip_rows + flip_cols.

    Applied in that order: optionally swap rows and columns, then optionally reverse the row
    order (upside down), then the column order (mirror). The 8 bit patterns give the 8
    distinct symmetries: r = 0 identity, 1 mirror, 2 upside down, 3 half turn,
    4 transpose, 5 quarter turn clockwise, 6 quarter turn counter-clockwise, 7 anti-transpose.
    Per sample, without Python branches: each image's source index map is chosen with `where`
    on small int32 grids, then one pixel gather moves the pixels (a transpose-and-select of the
    images themselves costs several times more).
    """
    del fill_value  # a permutation of the pixels: nothing is uncovered
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None and height != width:
        raise UserError(f"the 'rotation' augmentation needs square images, got {height}x{width}")
    size = tf.shape(x)[1]
    rows, cols = tf.meshgrid(tf.range(size), tf.range(size), indexing="ij")  # [H, W] each
    r = tf.cast(params["rotation"], tf.int32)[:, None, None]  # [N, 1, 1]
    a = tf.where((r // 2) % 2 == 1, size - 1 - rows, rows)  # row index after the flips
    b = tf.where(r % 2 == 1, size - 1 - cols, cols)  # column index after the flips
    transpose = r >= 4  # ... and transposed before them: (a, b) reads the source at (b, a)
    return _permute_pixels(x, tf.where(transpose, b, a), tf.where(transpose, a, b))


def _sample_rotation_small(bits, batch, height, width):
    limit = math.radians(SMALL_ROTATION_MAX_DEGREES)
    return {"angle": _uniform(bits, "angle", [batch], -limit, limit)}


def _apply_rotation_small(x, params, fill_value):
    # Radians, counter-clockwise as displayed (np.rot90's sense): angle = pi/2 equals
    # rotation r = 6 up to rounding.
    # The corners uncovered by the turn get the fill value.
    shape = tf.shape(x)
    rows, cols = tf.meshgrid(tf.range(shape[1]), tf.range(shape[2]), indexing="ij")
    cy, cx = _centre(shape[1]), _centre(shape[2])
    dy = tf.cast(rows, tf.float32)[None] - cy  # [1, H, W]
    dx = tf.cast(cols, tf.float32)[None] - cx
    angle = params["angle"][:, None, None]  # [N, 1, 1]
    cos, sin = tf.cos(angle), tf.sin(angle)
    src_y = cy + cos * dy + sin * dx
    src_x = cx + cos * dx - sin * dy
    return _bilinear_sample(x, src_y, src_x, fill_value)


@dataclass(frozen=True)
class _Op:
    sample: Callable
    apply: Callable
    params: Tuple[str, ...]


OPS: Dict[str, _Op] = {
    "color": _Op(_sample_color, _apply_color, ("brightness", "saturation", "contrast")),
    "translation": _Op(_sample_translation, _apply_translation, ("translation",)),
    "cutout": _Op(_sample_cutout, _apply_cutout, ("cutout_center",)),
    "scale": _Op(_sample_scale, _apply_scale, ("scale",)),
    "rotation": _Op(_sample_rotation, _apply_rotation, ("rotation",)),
    "rotation_small": _Op(_sample_rotation_small, _apply_rotation_small, ("angle",)),
}


def parse_policy(policy: Union[str, Sequence[str], None]) -> Tuple[str, ...]:
    """``"color, translation"`` or ``["color", "translation"]`` -> ``("color", "translation")``.

    ``None``, ``""`` and ``"none"`` mean no augmentation. Ops run in the order given.
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        names = [part.strip().lower() for part in policy.split(",")]
    else:
        names = [str(part).strip().lower() for part in policy]
    names = [name for name in names if name]
    if names == ["none"]:
        return ()
    valid = ", ".join(OPS)
    seen = set()
    for name in names:
        if name not in OPS:
            raise PolicyError(
                f"unknown DiffAugment op {name!r} in policy {policy!r}; valid ops: {valid} "
                "(comma-separated), or 'none'"
            )
        if name in seen:
            raise PolicyError(f"DiffAugment op {name!r} appears twice in policy {policy!r}")
        seen.add(name)
    return tuple(names)


def _image_size_pair(image_size) -> Tuple[int, int]:
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2:
            raise ValueError(f"image_size must be an int or (height, width), got {image_size}")
        height, width = (int(v) for v in image_size)
    else:
        height = width = int(image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return height, width


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class DiffAugment(keras.layers.Layer):
    """Differentiable, per-sample random augmentation of ``[-1, 1]`` images (docs/method.md §5).

    Args:
        policy: comma-separated op names, applied in that order; default
            ``"color,translation,cutout,scale,rotation"``. ``""`` or ``"none"``: identity.
            Valid ops: ``color``, ``translation``, ``cutout``, ``scale``, ``rotation``,
            ``rotation_small`` (the last is off by default).
        fill_value: value of uncovered and cut-out pixels (default 0.0, mid-grey; see the module
            docstring).

    Parameters (``sample_params`` output, all with leading dim ``batch_size``):
        ``brightness``, ``saturation``, ``contrast`` float32 ``[N]`` (color);
        ``translation`` int32 ``[N, 2]`` (dy, dx) in ``[-size/8, size/8]``;
        ``cutout_center`` int32 ``[N, 2]`` (row, col) of the half-size square;
        ``scale`` float32 ``[N]`` in ``[0.8, 1.2]``; ``rotation`` int32 ``[N]`` in ``[0, 8)``;
        ``angle`` float32 ``[N]`` radians (rotation_small).

    The layer has no weights; it is a layer so it serialises with the model config and reads
    like Keras's own augmenters.
    """

    def __init__(self, policy=DEFAULT_POLICY, fill_value: float = 0.0, **kwargs):
        # Never autocast: bfloat16 images must come back bfloat16, float32 stay float32.
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self._policy = parse_policy(policy)
        self.fill_value = float(fill_value)
        # No weights to create: built from the start, so Keras never tries to build it by
        # calling it on symbolic data (it is used through apply(), not __call__).
        self.built = True

    @property
    def policy(self) -> Tuple[str, ...]:
        return self._policy

    # -- randomness ---------------------------------------------------------------------------
    def sample_params(self, batch_size, image_size, seed) -> Params:
        """Draw every op's parameters for ``batch_size`` images.

        batch_size: int or scalar int tensor (may be dynamic). image_size: int or (H, W).
        seed: int32/int64 tensor ``[2]`` (e.g. ``SeedGenerator.next()``; other integer dtypes
        are cast). Same seed -> same parameters, on any device.
        """
        height, width = _image_size_pair(image_size)
        params: Params = {}
        if not self._policy:
            return params
        bits = _RandomBits(tf.cast(tf.convert_to_tensor(seed), tf.int64), batch_size)
        for name in self._policy:
            params.update(OPS[name].sample(bits, batch_size, height, width))
        return params

    @staticmethod
    def slice_params(params: Params, start, stop) -> Params:
        """Rows ``start:stop`` of every parameter (a replica's share of a global batch)."""
        return {key: value[start:stop] for key, value in params.items()}

    # -- maths ----------------------------------------------------------------------------------
    def apply(self, images, params: Params):
        """Augment ``images`` [N, H, W, C] with ``params`` (row i of each for image i).

        Deterministic and differentiable w.r.t. ``images`` (to any order). Returns the input
        dtype; computes in float32.
        """
        images = tf.convert_to_tensor(images)
        if images.shape.rank is not None and images.shape.rank != 4:
            raise ValueError(f"DiffAugment expects images [N, H, W, C], got shape {images.shape}")
        input_dtype = images.dtype
        x = tf.cast(images, tf.float32)
        for name in self._policy:
            op = OPS[name]
            missing = [key for key in op.params if key not in params]
            if missing:
                raise KeyError(
                    f"DiffAugment op {name!r} needs params {list(op.params)}, missing {missing}; "
                    "draw them with sample_params() using the same policy"
                )
            x = op.apply(x, {key: params[key] for key in op.params}, self.fill_value)
        return tf.cast(x, input_dtype)

    def call(self, images, seed):
        """Sample parameters from ``seed`` (int tensor [2]) and apply them."""
        images = tf.convert_to_tensor(images)
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                "DiffAugment(images, seed) needs a static image size; with a dynamic one, call "
                "sample_params(batch, (H, W), seed) and apply() instead"
            )
        params = self.sample_params(tf.shape(images)[0], (height, width), seed)
        return self.apply(images, params)

    def get_config(self):
        config = super().get_config()
        config.update({"policy": ",".join(self._policy) or "none",
                       "fill_value": self.fill_value})
        return config
