"""The Dense every HViTGAN layer is made of, initialised the ViT / TransGAN way.

Kernels start from a truncated normal with standard deviation 0.02 and biases at zero (Keras's
default Glorot init is tuned for convolution stacks, not for deep pre-norm transformers).
"""
import keras

#: Standard deviation of the truncated-normal kernel / embedding initialiser.
INIT_STDDEV = 0.02


def truncated_normal():
    # A fresh initialiser per weight: Keras warns when one unseeded instance is reused.
    return keras.initializers.TruncatedNormal(stddev=INIT_STDDEV)


def linear(units, name, **kwargs):
    """A ``keras.layers.Dense`` with the transformer initialisation."""
    return keras.layers.Dense(
        units, kernel_initializer=truncated_normal(), bias_initializer="zeros", name=name,
        **kwargs,
    )

