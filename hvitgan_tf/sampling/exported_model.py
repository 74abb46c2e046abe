"""An exported hvitgan SavedModel, loaded with ``tf.saved_model.load`` only (docs/method.md §7).

Sampling never imports the model classes (STYLE: dependencies point one way): what it knows of
the networks is the ``generate`` / ``classify`` / ``features`` signatures and ``hvitgan.json``.
That is also all TF Serving and a Beam ``ModelHandler`` see, so the three agree by construction.
"""
from __future__ import annotations

import numpy as np

from hvitgan_tf.export.metadata import load_saved_model, read_export_metadata


class ExportedModel:
    """``ExportedModel(path)``: ``path`` is a version folder or a model base folder (highest
    version). ``.metadata`` is its ``hvitgan.json``; the methods take and return NumPy."""

    def __init__(self, path, metadata=None):
        import tensorflow as tf

        self.metadata = metadata or read_export_metadata(path)
        self.model_dir = self.metadata["model_dir"]
        self._loaded = load_saved_model(self.model_dir)  # owns the variables: keep it
        self._signatures = dict(self._loaded.signatures)
        missing = [name for name in ("generate", "classify") if name not in self._signatures]
        if missing:
            from hvitgan_tf.errors import UserError

            raise UserError(f"{self.model_dir} has no {', '.join(missing)} signature(s); "
                            "re-export it with 'hvitgan-tf export'")

    @property
    def class_names(self):
        return list(self.metadata["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> int:
        return int(self.metadata["version"])

    def generate(self, labels, seeds, truncation=1.0) -> dict:
        """``images`` uint8 ``[N, S, S, 3]``, ``probabilities`` ``[N, C]``, ``confidence``
        ``[N]`` for int labels ``[N]``, int64 seeds ``[N]`` and ψ (scalar or ``[N]``)."""
        import tensorflow as tf

        labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        psi = np.broadcast_to(np.asarray(truncation, dtype=np.float32), labels.shape)
        outputs = self._signatures["generate"](
            label=tf.constant(labels), seed=tf.constant(seeds),
            truncation=tf.constant(np.ascontiguousarray(psi)))
        return {key: value.numpy() for key, value in outputs.items()}

    def classify(self, images) -> dict:
        """``probabilities`` ``[N, C]`` and ``label`` ``[N]`` for uint8 images ``[N, H, W, 3]``."""
        import tensorflow as tf

        outputs = self._signatures["classify"](images=tf.constant(np.asarray(images, np.uint8)))
        return {key: value.numpy() for key, value in outputs.items()}

    def features(self, images) -> np.ndarray:
        import tensorflow as tf

        outputs = self._signatures["features"](images=tf.constant(np.asarray(images, np.uint8)))
        return outputs["features"].numpy()
