"""Changing the token grid: the generator's x2 upsamplings and the discriminator's 2x2 pooling.

All three take and return row-major token sequences ``[B, g*g, C]`` (see ``transformer.py``) and
view them as ``[B, g, g, C]`` images only for the resampling itself; reshapes are free.
"""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from hvitgan_tf.models.transformer import square_grid_side


def bicubic_upsampling_matrix(size):
    """``[2 * size, size]`` matrix ``A`` with ``A @ v`` == bicubic x2 resize of the 1-D signal
    ``v``.

    Built by resizing the identity with ``keras.ops.image.resize(..., "bicubic")`` (TF's
    ``ResizeBicubic``: Keys kernel, half-pixel centres, edge handling), so the matrix *is* that
    resize by construction. Bicubic resizing is separable, so ``A X A^T`` resizes an image.
    """
    with tf.init_scope():  # a build-time constant, even if first built inside a tf.function
        identity = np.eye(size, dtype="float32").reshape(1, size, 1, size)  # [1, H, W=1, C=H]
        columns = ops.image.resize(identity, (2 * size, 1), interpolation="bicubic")
        return np.asarray(columns, dtype="float64").reshape(2 * size, size)  # [2H, H]


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class BicubicUpsample(keras.layers.Layer):
    """x2 bicubic upsampling of the token grid, width unchanged (docs/method.md §2, generator stage
    1).

    ``[B, g*g, C] -> [B, 4*g*g, C]``, numerically ``keras.ops.image.resize(grid, (2g, 2g),
    "bicubic")``, applied as two small matmuls with :func:`bicubic_upsampling_matrix` instead of
    the ``ResizeBicubic`` op, which (TF 2.21, CPU) has no XLA kernel, no second derivative, and
    silently returns a ``None`` gradient for bfloat16 inputs. Runs in full precision (float32
    under mixed precision). Cost: ``12 g^3 C`` FLOPs per image, nothing next to an encoder.
    """

    def build(self, input_shape):
        g = square_grid_side(input_shape[1], self.name)
        self.interpolation = bicubic_upsampling_matrix(g)  # [2g, g], a constant

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        g = square_grid_side(n, self.name)
        a = ops.convert_to_tensor(self.interpolation, dtype=self.variable_dtype)  # [2g, g]
        x = ops.reshape(ops.cast(tokens, self.variable_dtype), (-1, g, g * width))  # [B, g, g*C]
        # Rows: a [2g, g] @ x[b] [g, g*C], broadcast over the batch (no transposes needed).
        x = ops.matmul(a, x)  # [B, 2g, g*C]
        x = ops.reshape(x, (-1, g, width))  # [B*2g, g, C]: one row of tokens per matrix
        x = ops.matmul(a, x)  # columns: [B*2g, 2g, C]
        return ops.cast(ops.reshape(x, (-1, 4 * n, width)), self.compute_dtype)  # [B, 4n, C]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4 * input_shape[1], input_shape[2])


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class PixelShuffleUpsample(keras.layers.Layer):
    """x2 pixel shuffle (depth-to-space): ``[B, g*g, C] -> [B, 4*g*g, C/4]`` (docs/method.md §2,
    stages 2-4).

    Each token's channels are split into four groups of ``C/4`` that become its 2x2 children, so
    resolution doubles at no compute cost while the width drops by 4.

    With ``blur`` (``GeneratorConfig.shuffle_blur``; not in the paper) the new grid is then
    smoothed by the fixed separable filter ``[1, 2, 1] / 4`` along each axis, borders reflected
    (the token beyond an edge is the edge's neighbour). Children in the same corner of their
    parents take the same slice of every parent's channels, so the cheapest pattern a pixel
    shuffle makes is one that repeats every two tokens of the new grid; this filter's response
    at exactly that period is zero (at the borders too, thanks to the reflection), and it keeps
    a constant grid unchanged.
    """

    def __init__(self, blur=False, **kwargs):
        super().__init__(**kwargs)
        self.blur = bool(blur)

    def build(self, input_shape):
        if input_shape[-1] % 4:
            raise ValueError(f"{self.name}: width {input_shape[-1]} is not divisible by 4")

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        g = square_grid_side(n, self.name)
        grid = ops.reshape(tokens, (-1, g, g, width))  # [B, g, g, C]
        grid = ops.depth_to_space(grid, 2)  # [B, 2g, 2g, C/4]
        if self.blur:
            grid = _smooth_121(_smooth_121(grid, axis=1), axis=2)
        return ops.reshape(grid, (-1, 4 * n, width // 4))  # [B, 4n, C/4]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4 * input_shape[1], input_shape[2] // 4)

    def get_config(self):
        return {**super().get_config(), "blur": self.blur}


def _smooth_121(grid, axis):
    """``[1, 2, 1] / 4`` along ``axis`` (1 or 2) of ``[B, H, W, C]`` with reflected borders: the
    token beyond an edge is the edge's neighbour. Grids of one token come back unchanged."""
    size = grid.shape[axis]
    if size < 2:
        return grid

    def span(x, start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    padded = ops.concatenate([span(grid, 1, 2), grid, span(grid, size - 2, size - 1)], axis=axis)
    return (span(padded, 0, size) + 2 * span(padded, 1, size + 1)
            + span(padded, 2, size + 2)) * 0.25


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class TokenAveragePool(keras.layers.Layer):
    """2x2 average pooling of the token grid: ``[B, g*g, C] -> [B, (g/2)^2, C]`` (docs/method.md
    §3.2).

    A reshape and a mean, which have gradients of every order (the gradient penalty needs two).
    """

    def build(self, input_shape):
        g = square_grid_side(input_shape[1], self.name)
        if g % 2:
            raise ValueError(f"{self.name}: a {g}x{g} token grid cannot be pooled 2x2")

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        g = square_grid_side(n, self.name)
        h = g // 2
        grid = ops.reshape(tokens, (-1, h, 2, h, 2, width))  # [B, g/2, 2, g/2, 2, C]
        pooled = ops.mean(grid, axis=(2, 4))  # [B, g/2, g/2, C]
        return ops.reshape(pooled, (-1, h * h, width))  # [B, (g/2)^2, C]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // 4, input_shape[2])
