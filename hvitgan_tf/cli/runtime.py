"""Starting TensorFlow for a command, quietly.

TensorFlow 2.21 prints absl/CUDA start-up lines ("All log messages before
absl::InitializeLog() ...", "Could not find cuda drivers ...") from C++ before
``TF_CPP_MIN_LOG_LEVEL`` is consulted, so the environment variable alone does not silence
them. ``start_tensorflow`` imports TensorFlow and initialises its devices with the process's
stderr file descriptor pointed at /dev/null, unless ``--verbose``.

Commands that need TensorFlow use ``cls=TFCommand``: it starts TensorFlow after click has
parsed the arguments, so ``--help`` and option errors never pay for the import.
"""
import os
import sys

import click


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


class TFCommand(click.Command):
    """A click command that starts TensorFlow (quietly) right before it runs."""

    def invoke(self, ctx):
        root = ctx.find_root()
        start_tensorflow(bool((root.obj or {}).get("verbose")))
        return super().invoke(ctx)
