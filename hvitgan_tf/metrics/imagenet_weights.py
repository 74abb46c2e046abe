"""Where ImageNet weight files come from: an explicit path, or Keras's download cache. Never the
network.

``keras.applications`` downloads weights on first use when given ``weights="imagenet"``. This
project's machines have no internet access, so that call would hang or fail deep inside Keras;
instead we look for the very file Keras would have downloaded, and otherwise stop with a message
that says how to get it. No TensorFlow import here.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

from hvitgan_tf.errors import UserError

_KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class WeightsFile:
    """One of Keras's published ImageNet weight files (the ``include_top=False`` variants)."""

    model: str  # human name for messages
    file_name: str  # name in Keras's cache folder
    url: str  # where Keras downloads it from
    option: str  # the Python argument (and CLI option stem) that takes an explicit path


INCEPTION_V3 = WeightsFile(
    "InceptionV3",
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    f"{_KERAS_APPLICATIONS_URL}/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inception_weights",
)

DENSENET169 = WeightsFile(
    "DenseNet169",
    "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
    f"{_KERAS_APPLICATIONS_URL}/densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "weights_path",
)


def keras_cache_dir() -> str:
    """Keras's download folder for model weights: ``$KERAS_HOME/models`` or ``~/.keras/models``.

    Read at call time (Keras itself reads ``KERAS_HOME`` once, at import).
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def resolve_weights(weights: WeightsFile, explicit_path: Optional[str] = None) -> str:
    """The path of ``weights``' file: ``explicit_path`` if given, else Keras's cached copy.

    Raises ``UserError`` naming the URL and both ways to provide the file when neither exists.
    """
    if explicit_path:
        path = os.path.expanduser(os.fspath(explicit_path))
        if not os.path.isfile(path):
            raise UserError(f"{weights.model} weights file {path} does not exist "
                            f"(given as {weights.option})")
        return path
    cached = os.path.join(keras_cache_dir(), weights.file_name)
    if os.path.isfile(cached):
        return cached
    raise UserError(
        f"{weights.model} needs its ImageNet weights file, which is not in Keras's cache "
        f"({cached}), and this machine cannot download it. On a machine with internet access "
        f"download {weights.url} , then either pass its path ({weights.option}=PATH) or copy "
        f"it to {cached}."
    )


def file_fingerprint(path: str, length: int = 16) -> str:
    """Short SHA-256 of a file's contents, so caches keyed by it notice a different file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]
