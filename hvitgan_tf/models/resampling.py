"""Changing the token grid: the generator's x2 upsamplings and the discriminator's 2x2 pooling.

All three take and return row-major token sequences ``[B, g*g, C]`` (see ``transformer.py``) and
view them as ``[B, g, g, C]`` images only for the resampling itself; reshapes are free.
"""
import keras
from keras import ops

from hvitgan_tf.models.transformer import square_grid_side


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class BicubicUpsample(keras.layers.Layer):
    """x2 bicubic upsampling of the token grid, width unchanged (SPEC §2, generator stage 1).

    ``[B, g*g, C] -> [B, 4*g*g, C]``. Uses ``keras.ops.image.resize`` (TF ``ResizeBicubic``, half
    pixel centres). Its gradient op has no gradient of its own, so a second derivative *through the
    generator* is not available; the WGAN-GP penalty only differentiates the discriminator twice.
    """

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        g = square_grid_side(n, self.name)
        grid = ops.reshape(tokens, (-1, g, g, width))  # [B, g, g, C]
        # Full precision in: TF's ResizeBicubic gradient silently returns None for a bfloat16
        # input (mixed precision would cut the generator in two). Its output is float32 anyway.
        grid = ops.image.resize(ops.cast(grid, self.variable_dtype), (2 * g, 2 * g),
                                interpolation="bicubic")  # [B, 2g, 2g, C]
        return ops.cast(ops.reshape(grid, (-1, 4 * n, width)), self.compute_dtype)  # [B, 4n, C]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4 * input_shape[1], input_shape[2])


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class PixelShuffleUpsample(keras.layers.Layer):
    """x2 pixel shuffle (depth-to-space): ``[B, g*g, C] -> [B, 4*g*g, C/4]`` (SPEC §2, stages 2-4).

    Each token's channels are split into four groups of ``C/4`` that become its 2x2 children, so
    resolution doubles at no compute cost while the width drops by 4.
    """

    def build(self, input_shape):
        if input_shape[-1] % 4:
            raise ValueError(f"{self.name}: width {input_shape[-1]} is not divisible by 4")

    def call(self, tokens):
        n, width = tokens.shape[1], tokens.shape[2]
        g = square_grid_side(n, self.name)
        grid = ops.reshape(tokens, (-1, g, g, width))  # [B, g, g, C]
        grid = ops.depth_to_space(grid, 2)  # [B, 2g, 2g, C/4]
        return ops.reshape(grid, (-1, 4 * n, width // 4))  # [B, 4n, C/4]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4 * input_shape[1], input_shape[2] // 4)


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class TokenAveragePool(keras.layers.Layer):
    """2x2 average pooling of the token grid: ``[B, g*g, C] -> [B, (g/2)^2, C]`` (SPEC §3.2).

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
