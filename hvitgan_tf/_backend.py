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


_TOO_LATE = ("--deterministic must be set before TensorFlow starts; it already runs in this "
             "process without it")


def start_tensorflow(verbose=False, deterministic=False):
    """Import TensorFlow and list its devices (silencing the C++ start-up noise).

    ``deterministic``: TensorFlow runs one op at a time and picks deterministic kernels, so a
    training run repeats bit for bit (``hvitgan-tf train --deterministic``). Both settings
    must be made before TensorFlow starts its runtime, so a process that started TensorFlow
    without them cannot turn them on later.
    """
    if "tensorflow" in sys.modules and getattr(start_tensorflow, "done", False):
        if deterministic and not _is_deterministic():
            raise UserError(_TOO_LATE)
        return
    if verbose:
        import tensorflow as tf

        _configure(tf, deterministic)
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

                _configure(tf, deterministic)
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


def _configure(tf, deterministic):
    """Make TensorFlow's runtime deterministic, before it starts.

    Measured (docs/method.md §11.21): by default two runs of the `small` model from the same
    seed differed in the last bits after 3 iterations, in one process or in two, also with
    one thread per op or oneDNN off; with one op at a time alone they mostly agreed, with one
    op at a time and op determinism together they were identical every time.
    """
    if deterministic:
        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # the runtime has started: its thread pools are made
            raise UserError(_TOO_LATE) from None
        tf.config.experimental.enable_op_determinism()  # TensorFlow offers no public getter
        _configure.op_determinism = True


def _is_deterministic():
    import tensorflow as tf

    return (getattr(_configure, "op_determinism", False)
            and tf.config.threading.get_inter_op_parallelism_threads() == 1)


def runtime_record():
    """What ``run.json`` keeps of the TensorFlow runtime that trained a run."""
    import tensorflow as tf

    return {"tensorflow": tf.__version__,
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "deterministic": bool(_is_deterministic())}
