"""Force the TensorFlow Keras backend before anything imports Keras.

hvitgan-tf uses ``tf.data``, ``tf.distribute`` and TensorFlow SavedModels, so a JAX or PyTorch
Keras backend cannot work. The environment variable wins over ``~/.keras/keras.json``, so setting
it here is enough when Keras has not been imported yet.
"""
import os
import sys

from hvitgan_tf.errors import UserError


def ensure_tensorflow_backend():
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen and chosen != "tensorflow":
        raise UserError(
            f"hvitgan-tf needs the TensorFlow Keras backend, but KERAS_BACKEND={chosen!r}. "
            "Unset it or set KERAS_BACKEND=tensorflow."
        )
    keras_module = sys.modules.get("keras")
    if keras_module is not None and hasattr(keras_module, "backend"):
        backend = keras_module.backend.backend()
        if backend != "tensorflow":
            raise UserError(
                f"Keras was already imported with the {backend!r} backend; hvitgan-tf needs "
                "'tensorflow'. Import hvitgan_tf before keras, or set KERAS_BACKEND=tensorflow."
            )
    os.environ["KERAS_BACKEND"] = "tensorflow"
