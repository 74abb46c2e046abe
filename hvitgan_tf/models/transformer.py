"""The one transformer encoder block of HViTGAN (SPEC §2 "Transformer encoder"), used by both the
generator and the discriminator, with global or non-overlapping window self-attention.

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
    """Multi-head self-attention over the sequence axis of ``[batch, tokens, width]``.

    One fused Dense produces queries, keys and values (one large matmul instead of three), and
    one transpose splits them into heads. The logits use ``tf.linalg.matmul(..., transpose_b=True)``
    on purpose: ``keras.ops.einsum`` / ``keras.ops.dot_product_attention`` on the TensorFlow
    backend materialise a transposed copy of the keys and scale the (much larger) logits tensor;
    scaling the queries instead is the same maths for less memory traffic. The softmax runs in
    float32 under mixed precision. All ops have exact second-order gradients (WGAN-GP, SPEC §4;
    checked against finite differences in the tests).
    """

    def __init__(self, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.qkv = None
        self.output_projection = None

    def build(self, input_shape):
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(f"{self.name}: width {width} is not divisible by "
                             f"num_heads={self.num_heads}")
        self.qkv = linear(3 * width, name="qkv")
        self.output_projection = linear(width, name="output_projection")
        self.qkv.build(input_shape)
        self.output_projection.build(input_shape)

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        heads = self.num_heads
        head_dim = width // heads
        qkv = self.qkv(tokens)  # [B, n, 3C]
        qkv = ops.reshape(qkv, (-1, n, 3, heads, head_dim))  # [B, n, (q|k|v), h, d]
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # [(q|k|v), B, h, n, d]
        queries = qkv[0] * ops.cast(head_dim ** -0.5, qkv.dtype)
        keys, values = qkv[1], qkv[2]
        logits = tf.linalg.matmul(queries, keys, transpose_b=True)  # [B, h, n, n]
        # Softmax in full precision (float32 under mixed precision; a no-op cast otherwise).
        weights = ops.softmax(ops.cast(logits, self.variable_dtype), axis=-1)
        weights = ops.cast(weights, values.dtype)
        attended = ops.matmul(weights, values)  # [B, h, n, d]
        attended = ops.transpose(attended, (0, 2, 1, 3))  # [B, n, h, d]
        attended = ops.reshape(attended, (-1, n, width))  # [B, n, C]
        return self.output_projection(attended)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class TransformerEncoder(keras.layers.Layer):
    """Pre-norm encoder block: ``x + MHSA(LN(x))`` then ``x + MLP(LN(x))`` (SPEC §2).

    Args:
        num_heads: attention heads (must divide the token width).
        mlp_ratio: hidden width of the MLP relative to the token width (SPEC: 4).
        window_size: ``None`` for global attention over all tokens, or ``w`` for attention inside
            non-overlapping ``w x w`` windows of the square token grid (``w`` must divide it).
        epsilon: LayerNorm epsilon (1e-6).

    Input and output ``[batch, tokens, width]``. The MLP uses the exact (erf) GELU.
    """

    def __init__(self, num_heads, mlp_ratio=4.0, window_size=None, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.window_size = None if window_size is None else int(window_size)
        self.epsilon = float(epsilon)
        self.grid_size = None  # set in build() for window attention
        self.attention_norm = LayerNorm(self.epsilon, name="attention_norm")
        self.attention = MultiHeadSelfAttention(self.num_heads, name="attention")
        self.mlp_norm = LayerNorm(self.epsilon, name="mlp_norm")
        self.mlp_hidden = None
        self.mlp_output = None

    def build(self, input_shape):
        num_tokens, width = input_shape[1], input_shape[2]
        hidden = max(1, int(width * self.mlp_ratio))
        self.mlp_hidden = linear(hidden, name="mlp_hidden")
        self.mlp_output = linear(width, name="mlp_output")
        attention_input = input_shape
        if self.window_size is not None:
            self.grid_size = square_grid_side(num_tokens, self.name)
            if self.grid_size % self.window_size:
                raise ValueError(f"{self.name}: window_size {self.window_size} does not divide "
                                 f"the {self.grid_size}x{self.grid_size} token grid")
            attention_input = (None, self.window_size ** 2, width)
        self.attention_norm.build(input_shape)
        self.attention.build(attention_input)
        self.mlp_norm.build(input_shape)
        self.mlp_hidden.build(input_shape)
        self.mlp_output.build(tuple(input_shape[:-1]) + (hidden,))

    def call(self, tokens):
        h = self.attention_norm(tokens)
        if self.window_size is None:
            h = self.attention(h)
        else:
            h = window_partition(h, self.grid_size, self.window_size)  # [B * nW, w*w, C]
            h = self.attention(h)
            h = window_reverse(h, self.grid_size, self.window_size)  # [B, g*g, C]
        tokens = tokens + h
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
        }
