"""Exported SavedModels (docs/method.md §7): writing them from a run, and serving them.

    from hvitgan_tf.export import export_run, read_export_metadata, resolve_model_dir
    path = export_run("runs/demo")                      # -> .../saved_models/hvitgan/1
    read_export_metadata("saved_models/hvitgan")        # highest version's hvitgan.json

Modules: ``savedmodel`` (``export_run`` and the signatures), ``classifier``
(``export_classifier``: a benchmark classifier with ``classify`` and ``features`` signatures),
``rest_client`` (a urllib client for TF Serving's REST API). Reading an export back (version
lookup, ``hvitgan.json``, the signatures) is ``hvitgan_tf.exported_model``, below training, so
that every layer may read one; its names are handed on here too.
``export_run`` imports TensorFlow on first use, so the CLI's option checks stay fast.
"""
import importlib

from hvitgan_tf.exported_model import (CLASS_NAMES_FILE, EXTRA_DIR, FORMAT, FORMAT_VERSION,
                                       METADATA_FILE, SIGNATURES, list_versions,
                                       read_export_metadata, resolve_model_dir)

_LAZY = {
    "export_run": "hvitgan_tf.export.savedmodel",
    "build_archive": "hvitgan_tf.export.savedmodel",
    "PARALLEL_SAMPLES": "hvitgan_tf.export.savedmodel",
}

__all__ = ["CLASS_NAMES_FILE", "EXTRA_DIR", "FORMAT", "FORMAT_VERSION", "METADATA_FILE",
           "SIGNATURES", "list_versions", "read_export_metadata", "resolve_model_dir", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
