"""Force the TensorFlow Keras backend before anything imports Keras, and start TensorFlow
quietly.

hvitgan-tf uses ``tf.data``, ``tf.distribute`` and TensorFlow SavedModels, so a JAX or PyTorch
Keras backend cannot work. The environment variable wins over ``~/.keras/keras.json``, so setting
it here is enough when Keras has not been imported yet.

TensorFlow 2.21 prints absl/CUDA start-up lines ("All log messages before
absl::InitializeLog() ...", "Could not find cuda drivers ...") from C++ before
``TF_CPP_MIN_LOG_LEVEL`` is consulted, so the environment variable alone does not silence
them. ``start_tensorflow`` imports TensorFlow and initialises its devices with the process's
stderr file descriptor pointed at /dev/null, unless ``verbose``. The CLI and the Beam
pipeline both start TensorFlow this way.
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


def start_tensorflow(verbose=False):
    """Import TensorFlow and list its devices (silencing the C++ start-up noise)."""
    if "tensorflow" in sys.modules and getattr(start_tensorflow, "done", False):
        return
    if verbose:
        import tensorflow as tf

        tf.config.list_physical_devices()
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            try:
                import tensorflow as tf

                tf.config.list_physical_devices()
                tf.get_logger().setLevel("ERROR")
            except Exception:
                os.dup2(saved, 2)
                raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
    start_tensorflow.done = True
