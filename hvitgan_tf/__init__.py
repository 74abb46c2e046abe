"""hvitgan-tf: a pure-transformer class-conditional GAN for histopathology patches.

Importing the package does not import TensorFlow (the CLI's ``--help`` must stay fast); it only
makes sure that Keras, whenever it is imported, runs on the TensorFlow backend.
"""
import os
import sys

from hvitgan_tf._backend import ensure_tensorflow_backend
from hvitgan_tf.errors import UserError

__version__ = "0.1.0"

try:
    ensure_tensorflow_backend()
except UserError as _error:
    if os.path.basename(sys.argv[0]) in ("hvitgan-tf", "hvitgan-tf.exe"):
        # The console script: a user mistake gets one line and exit 2, not a traceback.
        sys.stderr.write(f"Error: {_error}\n")
        raise SystemExit(2) from None
    raise ImportError(str(_error)) from None
