"""Layer norms: the plain one of every encoder block and the generator's conditional one
(docs/method.md §2).

Why not ``keras.layers.LayerNormalization``: on the TensorFlow backend it computes the variance
with ``tf.nn.moments``, which wraps the mean in ``stop_gradient``. First derivatives are still
exact (the dropped term is zero), but *second* derivatives are not: the gradient penalty's
gradient w.r.t. the discriminator's weights came out several percent off in a float64
finite-difference check. :func:`normalize` below keeps the whole computation differentiable.
"""
import keras
from keras import ops


def normalize(tokens, epsilon, center_tokens=False):
    """``(x - mean) / sqrt(var + eps)`` over the last (channel) axis, exact to any derivative
    order. Runs in the input's dtype; callers upcast half precision first.

    With ``center_tokens`` each image's mean token (``[B, 1, C]``, the mean over the token axis)
    is first subtracted, so a vector that every token of an image shares cannot reach the
    normalisation (docs/method.md §11.10: the generator's encoders learn such a vector, shared
    by every image too, within a hundred iterations, and normalising it away with the tokens
    made every noise give the same image)."""
    if center_tokens:
        tokens = tokens - ops.mean(tokens, axis=1, keepdims=True)
    mean = ops.mean(tokens, axis=-1, keepdims=True)
    centred = tokens - mean
    variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    return centred * ops.rsqrt(variance + epsilon)


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class LayerNorm(keras.layers.Layer):
    """LayerNorm over each token's channels with learned scale ``gamma`` and offset ``beta``.

    Same forward values as ``keras.layers.LayerNormalization(epsilon=...)``, but with exact
    second-order gradients (module docstring). Statistics run in full precision (float32 under
    mixed precision); the output has the layer's compute dtype. ``center_tokens``: subtract each
    image's mean token first (:func:`normalize`; input ``[B, n, C]``).
    """

    def __init__(self, epsilon=1e-6, center_tokens=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center_tokens = bool(center_tokens)

    def build(self, input_shape):
        width = input_shape[-1]
        self.gamma = self.add_weight(shape=(width,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(width,), initializer="zeros", name="beta")

    def call(self, tokens):
        full = self.variable_dtype
        normalized = normalize(ops.cast(tokens, full), self.epsilon, self.center_tokens)
        out = normalized * ops.cast(self.gamma, full) + ops.cast(self.beta, full)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "center_tokens": self.center_tokens}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class ConditionalLayerNorm(keras.layers.Layer):
    """``CLN(h | e) = (1 + W_g e) * (h - mean(h)) / sqrt(var(h) + eps) + W_b e`` (docs/method.md
    §2).

    Called as ``layer([tokens, condition])`` with tokens ``[batch, n, width]`` and the condition
    vector ``e`` ``[batch, e_dim]`` (in HViTGAN ``e_k = concat(z_k, class_embedding(y))``). Mean and
    variance run over the channel axis of each token, exactly as in :class:`LayerNorm`.

    ``W_g`` and ``W_b`` (Dense layers, kernel and bias) start at zero, so an untrained CLN *is* a
    plain LayerNorm; their biases play the part of LayerNorm's own learned scale and offset. The
    normalisation and the scale/offset run in full precision (float32 under mixed precision: a
    per-sample modulation that bfloat16's 8-bit mantissa would round away near 1); the output
    has the layer's compute dtype. ``center_tokens``: subtract each image's mean token before
    normalising (:func:`normalize`); the offset ``W_b e`` is added after, so the condition still
    sets what every token of the image shares.
    """

    def __init__(self, epsilon=1e-6, center_tokens=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.center_tokens = bool(center_tokens)
        self.gamma_projection = None
        self.beta_projection = None

    def build(self, input_shape):
        tokens_shape, condition_shape = input_shape
        width = tokens_shape[-1]
        # Full precision (float32 under a mixed policy) keeps the modulation precise.
        self.gamma_projection = keras.layers.Dense(
            width, kernel_initializer="zeros", bias_initializer="zeros",
            dtype=self.variable_dtype, name="gamma_projection")
        self.beta_projection = keras.layers.Dense(
            width, kernel_initializer="zeros", bias_initializer="zeros",
            dtype=self.variable_dtype, name="beta_projection")
        self.gamma_projection.build(condition_shape)
        self.beta_projection.build(condition_shape)

    def call(self, inputs):
        tokens, condition = inputs
        normalized = normalize(ops.cast(tokens, self.variable_dtype), self.epsilon,
                               self.center_tokens)
        gamma = 1.0 + self.gamma_projection(condition)  # [B, C]
        beta = self.beta_projection(condition)  # [B, C]
        # [B, 1, C]: one scale and offset per sample, shared by all its tokens.
        out = normalized * ops.expand_dims(gamma, 1) + ops.expand_dims(beta, 1)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "center_tokens": self.center_tokens}
