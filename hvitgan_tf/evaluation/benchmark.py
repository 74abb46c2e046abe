"""The augmentation benchmark (docs/method.md §9, the paper's Table 1): classifiers trained on real
data only and on real + selected synthetic data, scored on the test split.

Vocabulary
    *model*      a classifier name from the registry (``resnet34``, ``resnet50_cbam``,
                 ``densenet169``, ``hvitgan_head``; see ``classifiers`` and ``gan_head``).
    *arm*        one training set: ``real`` (the real training split, after ``--fraction`` /
                 ``--limit``), or real + one synthetic image folder. The synthetic folders are
                 the selective-augmentation output of ``hvitgan_tf.sampling.sample`` (docs/method.md
                 §6), or a folder the user wrote with ``hvitgan-tf sample``.
    *run*        one model trained on one arm with one seed, then scored on the test split.
    *row*        one model x arm, aggregated over ``repeats`` seeds as mean ± std.

Protocol (the same for every model, so that rows differ only by network and data)
    - images at one size ``S`` (``--image-size``; by default the GAN's). Real images go through
      the data pipeline's ``to_model_input`` (centre crop, antialiased bilinear resize, the
      rule the GAN was trained with); synthetic images, generated at the GAN's size, are read
      back through the same function, so both sides are resized the same way (not at all when
      ``S`` is the GAN's size).
    - Adam (``learning_rate``), sparse categorical cross-entropy on the softmax output, batch
      ``batch_size``, ``epochs`` passes over the arm's training set (real + synthetic: an epoch
      is a pass over both, interleaved at random in proportion to their sizes).
    - optional augmentation (on by default): a uniformly random element of the dihedral group
      (rot90 by 0-3 quarter turns, then an optional flip), label-preserving for tissue.
    - repeat ``r`` uses seed ``seed + r`` for the initial weights, the data order and the
      augmentation, in every arm: "real" and "+ Aug" runs of one repeat are paired.
    - the test split is used whole; metrics are ``classification_metrics``' (positive class =
      label 1, predicted positive when its probability is >= 0.5).

Modules: ``benchmark_arms`` (models, arms, recipe and their checks), ``benchmark_data`` (the
synthetic sets and each run's batches), this one (one run, and the loop over all of them) and
``reports`` (the table, CSV files and plots).

Output folder (``reports.write_reports``)::

    results.md      docs/method.md §9's table (mean ± std over repeats) and the set-up
    results.csv     one row per table row: <metric>_mean, <metric>_std, repeats
    runs.csv        one row per run (the numbers behind the table)
    results.json    everything above plus the configuration and per-run details
    roc.png         mean ROC curve per row (±1 std band over repeats), binary data only
    bars.png        grouped bar chart of the four metrics
    runs/<id>.json  one finished run (metrics, timings, fingerprint); runs/<id>.npz its test
                    labels and probabilities. A rerun skips runs whose fingerprint (model,
                    arm data, recipe, seed, image size, data selection) is unchanged.
    synthetic/<arm>/ generated synthetic sets (when made from an exported GAN)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Optional, Sequence

import keras
import numpy as np

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.benchmark_arms import (Arm, ClassifierOptions, Log, Recipe,
                                                  check_models, row_title)
from hvitgan_tf.evaluation.benchmark_data import (prepare_synthetic, synthetic_source,
                                                  training_dataset)
from hvitgan_tf.evaluation.reports import results_from_runs, write_reports
from hvitgan_tf.fileio import atomic_open, read_json, write_json

#: Runs with at most this many optimiser steps (and test splits of at most this many batches)
#: execute eagerly: tracing the deeper networks' training step costs more than such a short run
#: takes eagerly, and the numbers are the same up to float rounding. Measured on a busy 2-core
#: CPU, ResNet34 at width 0.125 on 16 px: 80 s to trace, then 0.2 s per step; eagerly 5 s per
#: step. Break-even is near 16 steps.
EAGER_MAX_STEPS = 12


# -- one run -----------------------------------------------------------------------------------

def build_benchmark_model(name: str, image_size: int, num_classes: int,
                          options: ClassifierOptions, gan_head=None):
    """The classifier ``name`` for ``S x S`` images (``gan_head`` for ``hvitgan_head``)."""
    if name == "hvitgan_head":
        from hvitgan_tf.evaluation.gan_head import build_hvitgan_head, head_for_image_size

        head = gan_head or head_for_image_size(image_size, num_classes)
        return build_hvitgan_head((image_size, image_size, 3), num_classes, head)
    from hvitgan_tf.evaluation.classifiers import build_classifier

    return build_classifier(name, (image_size, image_size, 3), num_classes,
                            **options.for_model(name))


class EpochLines(keras.callbacks.Callback):
    """One line per epoch (loss, accuracy, seconds): the per-run progress output."""

    def __init__(self, log: Log, epochs: int):
        super().__init__()
        self.log = log
        self.epochs = epochs
        self.began = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.log(f"    epoch {epoch + 1}/{self.epochs}: loss {float(logs.get('loss', np.nan)):.4f}"
                 f", accuracy {float(logs.get('accuracy', np.nan)):.3f} "
                 f"({time.time() - self.began:.0f} s)")


def train_and_test(model, source, image_size: int, recipe: Recipe, seed: int, synthetic=None,
                   log: Log = print) -> dict:
    """Fit ``model`` on one arm with ``recipe`` and score it on the test split."""
    import tensorflow as tf

    from hvitgan_tf.evaluation.classification_metrics import (classification_metrics,
                                                              confusion_matrix)

    dataset = training_dataset(source, image_size, recipe, seed, synthetic)
    steps = int(dataset.cardinality()) * recipe.epochs
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  run_eagerly=0 <= steps <= EAGER_MAX_STEPS)
    began = time.time()
    history = model.fit(dataset,
                        epochs=recipe.epochs, verbose=0, shuffle=False,  # tf.data shuffles
                        callbacks=[EpochLines(log, recipe.epochs)])
    train_seconds = time.time() - began

    began = time.time()
    test = source.batches("test", image_size, recipe.batch_size)
    predict = lambda images: model(images, training=False)  # noqa: E731
    if int(test.cardinality()) > EAGER_MAX_STEPS:
        predict = tf.function(predict, reduce_retracing=True)
    labels, probabilities = [], []
    for images, batch_labels in test:
        probabilities.append(np.asarray(predict(images), np.float64))
        labels.append(batch_labels.numpy())
    labels = np.concatenate(labels).astype(np.int64)
    probabilities = np.concatenate(probabilities)
    metrics = classification_metrics(labels, probabilities)
    return {
        "metrics": {k: float(v) for k, v in metrics.items()},
        "confusion_matrix": confusion_matrix(labels, probabilities.argmax(axis=1),
                                             probabilities.shape[1]).tolist(),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "train_seconds": round(train_seconds, 1),
        "test_seconds": round(time.time() - began, 1),
        "labels": labels,
        "probabilities": probabilities.astype(np.float32),
    }


# -- the whole benchmark -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Run:
    model: str
    arm: Arm
    repeat: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.model}__{self.arm.key}__r{self.repeat}"


def _fingerprint(data) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_benchmark(out_dir: str, source, *, models: Sequence[str], arms: Sequence[Arm],
                  recipe: Recipe, repeats: int, image_size: int, seed: int = 0,
                  options: ClassifierOptions = ClassifierOptions(), gan_head=None,
                  data_info: Optional[dict] = None, log: Log = print) -> dict:
    """Train and test every model x arm x repeat (skipping finished runs), then write the
    reports. Returns the ``results.json`` content."""
    if repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {repeats}")
    image_size = int(image_size)
    check_models(models, options)
    if "test" not in source.split_names or source.num_examples("test") < 2:
        raise UserError(f"{source.spec} has no test split to score the classifiers on")
    if "hvitgan_head" in models and gan_head is None:
        from hvitgan_tf.evaluation.gan_head import head_for_image_size

        gan_head = head_for_image_size(image_size, source.num_classes)
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    data_info = dict(data_info or {"spec": source.spec})

    synthetic_info = {}
    synthetic_sources = {}
    for arm in arms:
        if arm.is_real:
            continue
        synthetic_info[arm.key] = prepare_synthetic(arm, batch_size=recipe.batch_size, log=log)
        synthetic_sources[arm.key] = synthetic_source(arm.synthetic_dir, source.class_names)

    runs = [Run(model, arm, r, seed + r) for model in models for arm in arms
            for r in range(repeats)]
    n_real = source.num_examples("train")
    log(f"benchmark: {len(models)} model(s) x {len(arms)} training set(s) x {repeats} "
        f"repeat(s) = {len(runs)} runs, {image_size} px, {recipe.epochs} epoch(s) each; "
        f"test split: {source.num_examples('test')} patches -> {out_dir}")
    started = time.time()
    records = {}
    for index, run in enumerate(runs, start=1):
        synthetic = synthetic_sources.get(run.arm.key)
        n_fake = synthetic[0].num_examples("train") if synthetic else 0
        identity = {
            "model": run.model, "options": options.for_model(run.model),
            "gan_head": (gan_head.origin if gan_head is not None else None)
            if run.model == "hvitgan_head" else None,
            "arm": run.arm.describe(), "synthetic_counts": synthetic_info.get(run.arm.key, {})
            .get("images_per_class"), "recipe": dataclasses.asdict(recipe), "seed": run.seed,
            "image_size": image_size, "data": data_info, "test": source.class_counts("test"),
        }
        fingerprint = _fingerprint(identity)
        base = os.path.join(out_dir, "runs", run.run_id)
        title = row_title(run.model, run.arm)
        head = f"[{index}/{len(runs)}] {title}, repeat {run.repeat + 1}/{repeats} (seed {run.seed})"
        if os.path.exists(base + ".json") and os.path.exists(base + ".npz"):
            saved = read_json(base + ".json")
            if saved.get("fingerprint") == fingerprint:
                log(f"{head}: done earlier, skipping ({base}.json)")
                records[run.run_id] = saved
                continue
        log(f"{head}: {n_real} real" + (f" + {n_fake} synthetic" if n_fake else "")
            + " training patches")
        keras.backend.clear_session()
        keras.utils.set_random_seed(run.seed)
        model = build_benchmark_model(run.model, image_size, source.num_classes, options,
                                      gan_head)
        outcome = train_and_test(model, source, image_size, recipe, run.seed, synthetic, log)
        with atomic_open(base + ".npz", "wb") as handle:
            np.savez(handle, labels=outcome.pop("labels"),
                     probabilities=outcome.pop("probabilities"))
        record = {"run_id": run.run_id, "row": title, "model": run.model, "arm": run.arm.key,
                  "repeat": run.repeat, "seed": run.seed, "fingerprint": fingerprint,
                  "num_real": n_real, "num_synthetic": n_fake,
                  "parameters": int(model.count_params()), **outcome}
        write_json(base + ".json", record)
        records[run.run_id] = record
        metrics = record["metrics"]
        log("    test: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
            + f" ({record['train_seconds']:.0f} s training)")

    rows = {}
    for run in runs:
        rows.setdefault(row_title(run.model, run.arm), []).append(records[run.run_id])
    results = results_from_runs({title: [r["metrics"] for r in rec]
                                 for title, rec in rows.items()})
    summary = {
        "rows": {title: {m: {"mean": s.mean, "std": s.std, "n": s.n}
                         for m, s in row.items()} for title, row in results.items()},
        "runs": [{k: v for k, v in records[r.run_id].items() if k != "history"} for r in runs],
        "config": {"models": list(models), "arms": [a.describe() for a in arms],
                   "repeats": repeats, "seed": seed, "image_size": image_size,
                   "recipe": dataclasses.asdict(recipe),
                   "classifier_options": dataclasses.asdict(options),
                   "gan_head": gan_head.origin if gan_head is not None else None,
                   "gan_head_pretrained": bool(gan_head is not None and gan_head.pretrained),
                   "data": data_info, "class_names": list(source.class_names),
                   "num_train_real": n_real, "test_class_counts": source.class_counts("test")},
        "synthetic": synthetic_info,
        "seconds": round(time.time() - started, 1),
    }
    summary["files"] = write_reports(out_dir, results, rows, summary,
                                     binary=source.num_classes == 2)
    return summary
