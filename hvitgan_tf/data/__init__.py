"""Data sources for hvitgan-tf (docs/method.md §8): every ``--data`` form as one ``DataSource``.

    from hvitgan_tf.data import open_source
    source = open_source("demo", limit=200, seed=1)
    source.class_names, source.class_counts("train")
    dataset = source.examples("train", image_size=32, shuffle=True, seed=0)  # unbatched
    # -> (float32 [32, 32, 3] in [-1, 1], int32 label)

Modules: ``forms`` (the spec strings, no TensorFlow), ``splitting`` (seeded stratified splits and
subsets, NumPy), ``base`` (``DataSource`` and the pipeline), one module per source form
(``demo``, ``tfds_pcam``, ``pcam_h5``, ``folder``, ``tfrecord``), ``catalog`` (``open_source``)
and ``preview`` (the labelled grid of ``hvitgan-tf data preview``).

Importing this package does not import TensorFlow; ``open_source``, ``DataSource`` and
``to_model_input`` load it on first use, so CLI help and option parsing stay fast.
"""
import importlib

from hvitgan_tf.data.forms import (DEFAULT_SPLIT_FRACTIONS, SOURCE_FORMS, SPLIT_NAMES, DataError,
                                   parse_source_spec)

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "open_source": "hvitgan_tf.data.catalog",
    "DataSource": "hvitgan_tf.data.base",
    "SplitIndex": "hvitgan_tf.data.base",
    "to_model_input": "hvitgan_tf.data.base",
    "write_preview": "hvitgan_tf.data.preview",
}

__all__ = ["DEFAULT_SPLIT_FRACTIONS", "SOURCE_FORMS", "SPLIT_NAMES", "DataError",
           "parse_source_spec", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
