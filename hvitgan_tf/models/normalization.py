"""Conditional layer norm: the generator's class projection (SPEC §2, skip-z + CLN)."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class ConditionalLayerNorm(keras.layers.Layer):
    """``CLN(h | e) = (1 + W_g e) * (h - mean(h)) / sqrt(var(h) + eps) + W_b e`` (SPEC §2).

    Called as ``layer([tokens, condition])`` with tokens ``[batch, n, width]`` and the condition
    vector ``e`` ``[batch, e_dim]`` (in HViTGAN ``e_k = concat(z_k, class_embedding(y))``). Mean and
    variance run over the channel axis of each token, exactly as ``LayerNormalization``.

    ``W_g`` and ``W_b`` (Dense layers, kernel and bias) start at zero, so an untrained CLN *is* a
    plain LayerNorm; their biases play the part of LayerNorm's own learned scale and offset. The
    normalisation and the scale/offset run in float32 under mixed precision (they are a
    per-sample modulation that bfloat16's 8-bit mantissa would round away near 1); the output
    has the layer's compute dtype.
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.gamma_projection = None
        self.beta_projection = None

    def build(self, input_shape):
        tokens_shape, condition_shape = input_shape
        width = tokens_shape[-1]
        # dtype float32 keeps the modulation precise under a mixed policy (see class docstring).
        self.gamma_projection = keras.layers.Dense(
            width, kernel_initializer="zeros", bias_initializer="zeros", dtype="float32",
            name="gamma_projection")
        self.beta_projection = keras.layers.Dense(
            width, kernel_initializer="zeros", bias_initializer="zeros", dtype="float32",
            name="beta_projection")
        self.gamma_projection.build(condition_shape)
        self.beta_projection.build(condition_shape)

    def call(self, inputs):
        tokens, condition = inputs
        normalized = ops.layer_normalization(
            ops.cast(tokens, "float32"), gamma=None, beta=None, axis=-1, epsilon=self.epsilon)
        gamma = 1.0 + self.gamma_projection(condition)  # [B, C]
        beta = self.beta_projection(condition)  # [B, C]
        # [B, 1, C]: one scale and offset per sample, shared by all its tokens.
        out = normalized * ops.expand_dims(gamma, 1) + ops.expand_dims(beta, 1)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
