"""The one transformer encoder block of HViTGAN (docs/method.md §2 "Transformer encoder"), used by
both the generator and the discriminator, with global or non-overlapping window self-attention.

Token layout everywhere in the package: a square grid of ``g x g`` tokens stored row-major as a
sequence, ``[batch, g * g, width]``. Window attention cuts that grid into ``(g / w)^2`` windows of
``w x w`` tokens, moves the windows into the batch axis, runs ordinary self-attention inside each
window and puts the tokens back: attention cost per token drops from ``g^2`` to ``w^2``.
"""
import math

import keras
import tensorflow as tf
from keras import ops

from hvitgan_tf.models.linear import linear
from hvitgan_tf.models.normalization import LayerNorm


def window_partition(tokens, grid_size, window_size):
    """``[B, g*g, C]`` row-major grid -> ``[B * (g/w)^2, w*w, C]``, one row per window.

    Windows are ordered row-major over the grid of windows, tokens row-major inside a window.
    """
    g, w = grid_size, window_size
    n = g // w
    width = tokens.shape[-1]
    # [B, window row, row in window, window col, col in window, C]
    x = ops.reshape(tokens, (-1, n, w, n, w, width))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, window row, window col, row in w, col in w, C]
    return ops.reshape(x, (-1, w * w, width))  # [B * n * n, w * w, C]


def window_reverse(windows, grid_size, window_size):
    """Inverse of :func:`window_partition`: ``[B * (g/w)^2, w*w, C]`` -> ``[B, g*g, C]``."""
    g, w = grid_size, window_size
    n = g // w
    width = windows.shape[-1]
    x = ops.reshape(windows, (-1, n, n, w, w, width))  # [B, window row, window col, row, col, C]
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, window row, row in w, window col, col in w, C]
    return ops.reshape(x, (-1, g * g, width))  # [B, g * g, C]


def square_grid_side(num_tokens, what):
    """Side of the square token grid holding ``num_tokens`` tokens (window attention needs it)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{what}: {num_tokens} tokens do not form a square grid")
    return side


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Multi-head self-attention over ``[batch, tokens, width]``, global or inside windows.

    Args:
        num_heads: attention heads (must divide the width).
        window_size: ``None`` attends over all tokens; ``w`` attends inside each non-overlapping
            ``w x w`` window of the square token grid (what :func:`window_partition` cuts out).

    One fused Dense produces queries, keys and values, and ONE transpose turns its output into
    per-window, per-head ``q, k, v``; one more transpose puts the attended values back in grid
    order. The projections act on each token separately, so they run on the tokens in grid
    order and the window partition rides on the head-splitting transpose instead of costing two
    more copies of the activations (and their gradients, and the penalty's second-order terms).
    ``q, k, v`` come out of one ``unstack`` (its gradient is one ``stack``; indexing would cost
    a zero-filled full-size tensor per slice in every backward pass). The logits use
    ``tf.linalg.matmul(..., transpose_b=True)`` instead of an einsum, which on the TensorFlow
    backend would materialise transposed keys. The softmax runs in float32 under mixed precision.
    All ops have exact second-order gradients (WGAN-GP, docs/method.md §4).
    """

    def __init__(self, num_heads, window_size=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.window_size = None if window_size is None else int(window_size)
        self.grid_size = None  # set in build() for window attention
        self.qkv = None
        self.output_projection = None

    def build(self, input_shape):
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(f"{self.name}: width {width} is not divisible by "
                             f"num_heads={self.num_heads}")
        if self.window_size is not None:
            self.grid_size = square_grid_side(input_shape[1], self.name)
            if self.grid_size % self.window_size:
                raise ValueError(f"{self.name}: window_size {self.window_size} does not divide "
                                 f"the {self.grid_size}x{self.grid_size} token grid")
        self.qkv = linear(3 * width, name="qkv")
        self.output_projection = linear(width, name="output_projection")
        self.qkv.build(input_shape)
        self.output_projection.build(input_shape)

    def _split(self, qkv):
        """``[B, n, 3C]`` -> ``q, k, v``, each ``[B * windows, heads, tokens per window, d]``."""
        n, heads = qkv.shape[1], self.num_heads
        head_dim = qkv.shape[2] // (3 * heads)
        if self.window_size is None:
            x = ops.reshape(qkv, (-1, n, 3, heads, head_dim))  # [B, n, (q|k|v), h, d]
            x = ops.transpose(x, (2, 0, 3, 1, 4))  # [(q|k|v), B, h, n, d]
        else:
            w = self.window_size
            m = self.grid_size // w  # windows per grid side
            # [B, window row, row in w, window col, col in w, (q|k|v), h, d]
            x = ops.reshape(qkv, (-1, m, w, m, w, 3, heads, head_dim))
            # [(q|k|v), B, window row, window col, h, row in w, col in w, d]
            x = ops.transpose(x, (5, 0, 1, 3, 6, 2, 4, 7))
            x = ops.reshape(x, (3, -1, heads, w * w, head_dim))  # [(q|k|v), B*m*m, h, w*w, d]
        return ops.unstack(x, num=3, axis=0)

    def _merge(self, attended, n, width):
        """Inverse of :meth:`_split` for one tensor: ``[B * windows, h, t, d]`` -> ``[B, n, C]``."""
        heads = self.num_heads
        if self.window_size is None:
            if heads > 1:
                attended = ops.transpose(attended, (0, 2, 1, 3))  # [B, n, h, d]
            return ops.reshape(attended, (-1, n, width))
        w = self.window_size
        m = self.grid_size // w
        # [B, window row, window col, h, row in w, col in w, d]
        x = ops.reshape(attended, (-1, m, m, heads, w, w, width // heads))
        # [B, window row, row in w, window col, col in w, h, d]: row-major grid order again
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3, 6))
        return ops.reshape(x, (-1, n, width))

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        head_dim = width // self.num_heads
        queries, keys, values = self._split(self.qkv(tokens))
        queries = queries * ops.cast(head_dim ** -0.5, queries.dtype)
        logits = tf.linalg.matmul(queries, keys, transpose_b=True)  # [B', h, t, t]
        # Softmax in full precision (float32 under mixed precision; a no-op cast otherwise).
        weights = ops.softmax(ops.cast(logits, self.variable_dtype), axis=-1)
        weights = ops.cast(weights, values.dtype)
        attended = tf.linalg.matmul(weights, values)  # [B', h, t, d]
        return self.output_projection(self._merge(attended, n, width))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "window_size": self.window_size}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class TransformerEncoder(keras.layers.Layer):
    """Pre-norm encoder block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))`` (docs/method.md §2).

    Args:
        num_heads: attention heads (must divide the token width).
        mlp_ratio: hidden width of the MLP relative to the token width (docs/method.md §2.3: 4).
        window_size: ``None`` for global attention over all tokens, or ``w`` for attention inside
            non-overlapping ``w x w`` windows of the square token grid (``w`` must divide it).
        epsilon: LayerNorm epsilon (1e-6).
        center_tokens: both LayerNorms first subtract each image's mean token (the generator's
            option, ``GeneratorConfig.center_tokens``; see ``normalization.normalize``).

    Input and output ``[batch, tokens, width]``. The MLP uses the exact (erf) GELU.
    """

    def __init__(self, num_heads, mlp_ratio=4.0, window_size=None, epsilon=1e-6,
                 center_tokens=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.window_size = None if window_size is None else int(window_size)
        self.epsilon = float(epsilon)
        self.center_tokens = bool(center_tokens)
        self.attention_norm = LayerNorm(self.epsilon, self.center_tokens, name="attention_norm")
        self.attention = MultiHeadSelfAttention(self.num_heads, self.window_size,
                                                name="attention")
        self.mlp_norm = LayerNorm(self.epsilon, self.center_tokens, name="mlp_norm")
        self.mlp_hidden = None
        self.mlp_output = None

    def build(self, input_shape):
        width = input_shape[2]
        hidden = max(1, int(width * self.mlp_ratio))
        self.mlp_hidden = linear(hidden, name="mlp_hidden")
        self.mlp_output = linear(width, name="mlp_output")
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_hidden.build(input_shape)
        self.mlp_output.build(tuple(input_shape[:-1]) + (hidden,))

    def call(self, tokens):
        tokens = tokens + self.attention(self.attention_norm(tokens))
        h = self.mlp_hidden(self.mlp_norm(tokens))
        h = keras.activations.gelu(h, approximate=False)
        return tokens + self.mlp_output(h)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "window_size": self.window_size,
            "epsilon": self.epsilon,
            "center_tokens": self.center_tokens,
        }
