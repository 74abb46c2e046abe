"""Selective augmentation from an exported SavedModel (docs/method.md §6), usable without the CLI.

    from hvitgan_tf.sampling import sample
    report = sample("saved_models/hvitgan", "synthetic", per_class=500, threshold=0.8,
                    formats=("png", "tfrecord"))

Modules, in the order data flows through them:

``plan``            quotas from --classes / --per-class / --num / --class-ratio (no TensorFlow)
``seeds``           the int64 seed of attempt k of class c, and sample ids (NumPy only)
``sampler``         ``sample()``: allocate, generate, select, hand over to the writer
``writers``         PNG / TFRecord / manifest output, resume, the background writer thread
``report``          the final table and the kept-vs-rejected grid

Sampling never imports the model classes (``hvitgan_tf.models``): only the SavedModel is used,
through ``hvitgan_tf.exported_model.ExportedModel`` (its signatures, ``tf.saved_model.load``),
as TF Serving and a Beam pipeline would use it.
"""
import importlib

_LAZY = {
    "sample": "hvitgan_tf.sampling.sampler",
    "SampleReport": "hvitgan_tf.sampling.sampler",
    "ClassReport": "hvitgan_tf.sampling.sampler",
    "QuotaNotReached": "hvitgan_tf.sampling.sampler",
    "ExportedModel": "hvitgan_tf.exported_model",
    "plan_quotas": "hvitgan_tf.sampling.plan",
    "attempt_seed": "hvitgan_tf.sampling.seeds",
    "attempt_seeds": "hvitgan_tf.sampling.seeds",
    "sample_id": "hvitgan_tf.sampling.seeds",
    "kept_vs_rejected_grid": "hvitgan_tf.sampling.report",
    "preview_kept_vs_rejected": "hvitgan_tf.sampling.report",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
