"""The TFX Trainer's user module: ``run_fn(fn_args)`` trains hvitgan on ExampleGen's records
and exports the serving SavedModel into ``fn_args.serving_model_dir`` (docs/method.md §7, §10).

TFX's Trainer only calls ``run_fn``; everything inside is this package's own code path:

1. ``fn_args.train_files`` (ExampleGen's gzipped TFRecords of ``tf.train.Example``, in the
   layout ``hvitgan-tf sample`` writes: ``image/encoded``, ``image/class/label``, optional
   ``image/class/text``) become the data source ``tfrecord:<pattern>``
   (``hvitgan_tf.data.tfrecord`` reads ``.gz`` as GZIP);
2. ``hvitgan_tf.training.job.build_job`` decides the job from ``custom_config`` as
   ``hvitgan-tf train`` does from its options (strategy, data, configs), and
   ``hvitgan_tf.training.runner.train`` trains it in ``fn_args.model_run_dir`` (checkpoints,
   TensorBoard logs, samples);
3. ``hvitgan_tf.export.export_run`` writes the versioned SavedModel (``generate``,
   ``classify``, ``features``, ``metadata`` signatures and ``assets.extra/hvitgan.json``),
   which is moved to ``fn_args.serving_model_dir``; the Pusher copies it to
   ``saved_models/<name>/<version>/`` where TF Serving and ``hvitgan-tf sample`` find it.

Settings come from the Trainer's ``custom_config`` (keys: ``CONFIG_KEYS``); the Trainer's
``train_args.num_steps`` (``fn_args.train_steps``) is the number of iterations unless
``custom_config`` sets ``steps``. Nothing here imports TFX, so the module is tested without it
(TFX cannot be installed on glibc < 2.39 hosts), and it only ever uses ``import keras``:
importing ``tfx.v1`` sets ``TF_USE_LEGACY_KERAS=1``, which would turn ``tf.keras`` into Keras 2.

``gs://`` run and serving folders work: training runs in a local folder that is copied there
afterwards (the runner writes HDF5 checkpoints, which need a local file system).
"""
from __future__ import annotations

import os
import shutil
import tempfile

from hvitgan_tf.errors import UserError

#: ``custom_config`` keys and what they mean: ``hvitgan_tf.training.job`` settings (the CLI's
#: option names) but for ``model_name`` and ``verbose``.
CONFIG_KEYS = {
    "preset": "model preset (tiny, small, pcam96); default small",
    "class_projection": "False for the plain-LayerNorm ablation",
    "epochs": "passes over the training records", "steps": "total iterations",
    "steps_per_epoch": "iterations per epoch", "batch_size": "global batch",
    "lr_g": "generator learning rate", "lr_d": "critic learning rate",
    "n_critic": "critic steps per generator step", "diffaug": "DiffAugment policy",
    "loss_weighting": "temperature | kendall | none", "seed": "run seed",
    "mixed_precision": "mixed_bfloat16", "strategy": "auto | default | mirrored | ...",
    "checkpoint_every": "iterations between mid-epoch checkpoints",
    "limit": "use at most this many training records (stratified)",
    "fraction": "use this fraction of the training records (stratified)",
    "model_name": "name in the export metadata (default hvitgan)",
    "verbose": "Keras progress output: 0 none, 1 or 2 a line per epoch (default 2)",
}


def _remote(path: str) -> bool:
    return "://" in str(path)


def data_spec(train_files) -> str:
    """``tfrecord:<pattern>`` for the Trainer's training files (one pattern per split)."""
    patterns = [train_files] if isinstance(train_files, str) else list(train_files or [])
    if len(patterns) != 1:
        raise UserError(f"run_fn expects the records of one training split (one file "
                        f"pattern), got {len(patterns)}: {patterns}; give the Trainer "
                        "train_args with a single split")
    return f"tfrecord:{patterns[0]}"


def read_custom_config(custom_config) -> dict:
    config = dict(custom_config or {})
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise UserError(f"unknown custom_config key(s) {', '.join(unknown)}; known: "
                        f"{', '.join(CONFIG_KEYS)}")
    return config


def run_fn(fn_args):
    """TFX Trainer entry point (see the module docstring). Returns the serving folder."""
    config = read_custom_config(getattr(fn_args, "custom_config", None))
    spec = data_spec(fn_args.train_files)

    from hvitgan_tf.export import export_run
    from hvitgan_tf.training.job import build_job
    from hvitgan_tf.training.runner import train

    # custom_config keys are the CLI's option names (settings of hvitgan_tf.training.job).
    settings = {key: value for key, value in config.items()
                if key not in ("model_name", "verbose")}
    settings["data"] = spec
    if "steps" not in settings and getattr(fn_args, "train_steps", None):
        settings["steps"] = int(fn_args.train_steps)
    run_dir = str(fn_args.model_run_dir)
    # Creates the strategy before any other TensorFlow work: a multi-worker one cannot start
    # later.
    job = build_job(run_dir, settings)
    serving_dir = str(fn_args.serving_model_dir)
    scratch = tempfile.mkdtemp(prefix="hvitgan-tfx-")
    try:
        local_run = os.path.join(scratch, "run") if _remote(run_dir) else run_dir
        # The export goes to the Trainer's serving folder, not to an export base folder, so
        # it is done here rather than by the run.
        train(local_run, job.source, job.model_config, job.train_config,
              data_info=job.data_info, strategy=job.strategy,
              verbose=int(config.get("verbose", 2)))
        exported = export_run(local_run, export_dir=os.path.join(scratch, "export"),
                              name=config.get("model_name", "hvitgan"), version=1)
        if _remote(run_dir):
            copy_tree(local_run, run_dir)
        if _remote(serving_dir):
            copy_tree(exported, serving_dir)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(serving_dir)), exist_ok=True)
            if os.path.exists(serving_dir) and not os.listdir(serving_dir):
                os.rmdir(serving_dir)  # an empty folder made for us may be replaced
            shutil.move(exported, serving_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return serving_dir


def copy_tree(local_dir: str, target: str):
    """Copy a local folder to ``target`` (any ``tf.io.gfile`` file system, e.g. ``gs://``)."""
    import tensorflow as tf

    for folder, _, files in os.walk(local_dir):
        relative = os.path.relpath(folder, local_dir)
        destination = target if relative == "." else f"{target.rstrip('/')}/{relative}"
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{destination}/{name}", overwrite=True)
