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

Output folder (``write_reports``)::

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
from typing import Callable, Dict, List, Optional, Sequence

import keras
import numpy as np

from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import atomic_open, read_json, write_json

DEFAULT_MODELS = ("resnet34", "resnet50_cbam", "densenet169", "hvitgan_head")
#: Models built by ``classifiers._resnet``: the only ones that take width_multiplier /
#: small_input (DenseNet169 is Keras's fixed network, hvitgan_head the GAN's discriminator).
SCALABLE_MODELS = ("resnet34", "resnet50_cbam")
#: Models with ImageNet weights Keras publishes (``--pretrained``).
PRETRAINABLE_MODELS = ("densenet169",)
MODEL_TITLES = {"resnet34": "ResNet34", "resnet50_cbam": "ResNet50-CBAM",
                "densenet169": "DenseNet169", "hvitgan_head": "own class head"}
#: ``--ablations`` names -> (class projection on, selection on) of the synthetic set.
ABLATIONS = {"no-sa": (True, False), "no-cp": (False, True), "no-cp-no-sa": (False, False)}

Log = Callable[[str], None]

#: Runs with at most this many optimiser steps (and test splits of at most this many batches)
#: execute eagerly: tracing the deeper networks' training step costs more than such a short run
#: takes eagerly, and the numbers are the same up to float rounding. Measured on a busy 2-core
#: CPU, ResNet34 at width 0.125 on 16 px: 80 s to trace, then 0.2 s per step; eagerly 5 s per
#: step. Break-even is near 16 steps.
EAGER_MAX_STEPS = 12


# -- configuration -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recipe:
    """How every classifier is trained (identical for all models and arms)."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = True  # random rot90 + flip (the dihedral group)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError(f"epochs and batch size must be >= 1, got {self.epochs} and "
                            f"{self.batch_size}")
        if not self.learning_rate > 0:
            raise UserError(f"the learning rate must be > 0, got {self.learning_rate}")


@dataclasses.dataclass(frozen=True)
class ClassifierOptions:
    """Options passed to ``build_classifier`` where a model accepts them."""

    width_multiplier: float = 1.0
    small_input: bool = False
    pretrained: bool = False
    weights_path: Optional[str] = None  # DenseNet169's ImageNet file (else Keras's cache)

    def for_model(self, name: str) -> dict:
        kwargs = {}
        if name in SCALABLE_MODELS:
            kwargs.update(width_multiplier=self.width_multiplier, small_input=self.small_input)
        if self.pretrained and name != "hvitgan_head":
            kwargs.update(pretrained=True, weights_path=self.weights_path)
        return kwargs


def aug_title(class_projection: bool, selection: bool) -> str:
    """Row suffix of a synthetic arm, in the paper's notation."""
    if class_projection and selection:
        return "+ Aug (CP+SA)"
    if class_projection:
        return "+ Aug (CP, no SA)"
    if selection:
        return "+ Aug (SA, no CP)"
    return "+ Aug (no CP, no SA)"


def _aug_key(class_projection: bool, selection: bool) -> str:
    return {(True, True): "cp_sa", (True, False): "cp", (False, True): "sa",
            (False, False): "plain"}[(class_projection, selection)]


@dataclasses.dataclass(frozen=True)
class SyntheticPlan:
    """A synthetic set to generate with ``hvitgan_tf.sampling.sample``."""

    model_dir: str
    per_class: int
    threshold: float
    truncation: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Arm:
    """One training set: real only (``synthetic_dir`` None) or real + a synthetic folder."""

    key: str
    title: str  # "" for real only; appended to the model title
    synthetic_dir: Optional[str] = None
    plan: Optional[SyntheticPlan] = None  # how the folder is generated, if we generate it

    @property
    def is_real(self) -> bool:
        return self.synthetic_dir is None

    def describe(self) -> dict:
        return {"key": self.key, "title": self.title or "real only",
                "synthetic_dir": self.synthetic_dir,
                "plan": self.plan.to_dict() if self.plan else None}


REAL = Arm("real", "")


def plan_arms(out_dir: str, *, synthetic_dir: Optional[str] = None,
              model_dir: Optional[str] = None, model_no_cp: Optional[str] = None,
              threshold: float = 0.8, truncation: float = 1.0, per_class: int = 0,
              seed: int = 0, ablations: Sequence[str] = ()) -> List[Arm]:
    """The arms of a benchmark: real only, the main synthetic arm and the ablation arms.

    ``synthetic_dir`` (an existing sample folder) or ``model_dir`` (an exported GAN, sampled
    into ``OUT/synthetic/<arm>/``) give the main arm; ablations need ``model_dir``, and the
    ones without class projection need ``model_no_cp`` (a second GAN trained with
    ``--no-class-projection``).
    """
    from hvitgan_tf.exported_model import resolve_model_dir

    if synthetic_dir and model_dir:
        raise UserError("give either --synthetic (an existing sample folder) or --model (an "
                        "exported GAN to sample from), not both")
    if not 0.0 <= threshold < 1.0:
        raise UserError(f"--threshold must be in [0, 1), got {threshold}")
    unknown = [a for a in ablations if a not in ABLATIONS]
    if unknown:
        raise UserError(f"unknown ablation(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(ABLATIONS)} (or 'all')")
    arms = [REAL]
    if synthetic_dir:
        if ablations:
            raise UserError("--ablations generate their synthetic sets from --model (and "
                            "--model-no-cp); they cannot be made from a --synthetic folder")
        if not os.path.isdir(synthetic_dir):
            raise UserError(f"--synthetic {synthetic_dir} is not a folder")
        arms.append(Arm("synthetic", "+ Aug", os.path.abspath(synthetic_dir)))
        return arms
    if not model_dir:
        if ablations:
            raise UserError("--ablations need --model (the exported GAN to sample from)")
        return arms
    if per_class < 1:
        raise UserError(f"the synthetic images per class must be >= 1, got {per_class}")
    model_dir = resolve_model_dir(model_dir)
    main_cp = _class_projection(model_dir)
    no_cp_dir = None
    if model_no_cp:
        no_cp_dir = resolve_model_dir(model_no_cp)
        if _class_projection(no_cp_dir):
            raise UserError(f"--model-no-cp {no_cp_dir} was trained with class projection; "
                            "train it with 'hvitgan-tf train --no-class-projection'")
    wanted = [(main_cp, threshold > 0)]
    for name in ablations:
        cp, sa = ABLATIONS[name]
        if cp and not main_cp:
            raise UserError(f"ablation {name} needs a --model with class projection")
        if not cp and main_cp and no_cp_dir is None:
            raise UserError(f"ablation {name} needs --model-no-cp PATH: a second GAN trained "
                            "with --no-class-projection")
        if sa and threshold == 0:
            raise UserError(f"ablation {name} keeps selection on, but --threshold is 0")
        wanted.append((cp, sa))
    seen = set()
    for cp, sa in wanted:
        if (cp, sa) in seen:
            continue
        seen.add((cp, sa))
        source_model = model_dir if cp == main_cp else no_cp_dir
        key = _aug_key(cp, sa)
        plan = SyntheticPlan(source_model, int(per_class), float(threshold if sa else 0.0),
                             float(truncation), int(seed))
        arms.append(Arm(key, aug_title(cp, sa), os.path.join(out_dir, "synthetic", key), plan))
    return arms


def _class_projection(model_dir: str) -> bool:
    from hvitgan_tf.exported_model import read_metadata

    config = read_metadata(model_dir).get("model_config") or {}
    return bool(config.get("generator", {}).get("class_projection", True))


# -- synthetic sets ----------------------------------------------------------------------------

SAMPLING_RECORD = "benchmark-sampling.json"


def _images_per_class(folder: str) -> Dict[str, int]:
    from hvitgan_tf.data.folder import list_class_images

    if not os.path.isdir(folder):
        return {}
    return {name: len(paths) for name, paths in list_class_images(folder)}


def prepare_synthetic(arm: Arm, *, batch_size: int = 64, log: Log = print) -> dict:
    """Generate ``arm``'s synthetic folder (resuming an interrupted one); returns a summary.

    A folder made by an earlier run with other settings is refused rather than mixed with.
    """
    if arm.plan is None:
        counts = _images_per_class(arm.synthetic_dir)
        return {"images_per_class": counts, "generated": False}
    plan = arm.plan
    record_path = os.path.join(arm.synthetic_dir, SAMPLING_RECORD)
    if os.path.exists(record_path):
        if read_json(record_path).get("plan") != plan.to_dict():
            raise UserError(f"{arm.synthetic_dir} was generated with other settings "
                            f"({record_path}); delete it or choose another --out")
        counts = _images_per_class(arm.synthetic_dir)
        if counts and min(counts.values()) >= plan.per_class:
            log(f"synthetic set {arm.title}: {arm.synthetic_dir} is complete, reusing it")
            return {"images_per_class": counts, "generated": False,
                    **read_json(record_path).get("report", {})}
    os.makedirs(arm.synthetic_dir, exist_ok=True)
    write_json(record_path, {"plan": plan.to_dict()})
    log(f"synthetic set {arm.title}: {plan.per_class} per class from {plan.model_dir} "
        f"(threshold {plan.threshold:g}, truncation {plan.truncation:g}) -> "
        f"{arm.synthetic_dir}")
    from hvitgan_tf.sampling import QuotaNotReached, sample

    report = sample(plan.model_dir, arm.synthetic_dir, per_class=plan.per_class,
                    threshold=plan.threshold, truncation=plan.truncation,
                    batch_size=batch_size, seed=plan.seed, formats=("png",), progress=True)
    if not report.complete:
        raise QuotaNotReached(
            f"the synthetic set {arm.title} could not be filled: "
            f"{'; '.join(report.shortfalls)}. Lower --threshold or --synthetic-per-class, or "
            "train the GAN longer; rerunning continues where this stopped")
    summary = {"seconds": round(report.seconds, 1), "classes": {
        c.name: {"kept": c.kept, "attempts": c.attempts,
                 "acceptance": round(c.acceptance, 4),
                 "mean_confidence": round(c.mean_confidence, 4)} for c in report.classes}}
    write_json(record_path, {"plan": plan.to_dict(), "report": summary})
    return {"images_per_class": _images_per_class(arm.synthetic_dir), "generated": True,
            **summary}


# -- data --------------------------------------------------------------------------------------

def dihedral_augment(images, seed):
    """Each image of a square batch ``[B, S, S, C]`` turned into a uniformly random element of
    the dihedral group (k quarter turns, then an optional left-right flip), keyed by ``seed``
    (a stateless ``[2]`` seed). The eight variants are built for the whole batch and one is
    gathered per image: no per-image control flow."""
    import tensorflow as tf

    choice = tf.random.stateless_uniform([tf.shape(images)[0]], seed, minval=0, maxval=8,
                                         dtype=tf.int32)
    turns = [images] + [tf.image.rot90(images, k) for k in (1, 2, 3)]
    variants = turns + [tf.image.flip_left_right(v) for v in turns]
    stacked = tf.stack(variants, axis=1)  # [B, 8, S, S, C]
    return tf.gather(stacked, choice, axis=1, batch_dims=1)


def synthetic_source(folder: str, real_class_names: Sequence[str]):
    """A folder source with all images in its ``train`` split and a label map onto the real
    class order (folder classes are sorted by name; the real data's need not be)."""
    from hvitgan_tf.data import open_source

    synthetic = open_source(f"folder:{folder}", split_fractions=(1.0, 0.0, 0.0))
    unknown = [name for name in synthetic.class_names if name not in real_class_names]
    if unknown:
        raise UserError(f"the synthetic folder {folder} has classes "
                        f"{', '.join(unknown)} that the real data ({', '.join(real_class_names)})"
                        " does not have")
    mapping = [list(real_class_names).index(name) for name in synthetic.class_names]
    return synthetic, mapping


def training_dataset(source, image_size: int, recipe: Recipe, seed: int, synthetic=None):
    """Batches of ``(float [B, S, S, 3], int32 [B])`` for one run: real (+ synthetic) training
    images, freshly shuffled every epoch, dihedral augmentation if the recipe asks."""
    import tensorflow as tf

    seed_t = tf.constant(seed, tf.int64)
    real = source.examples("train", image_size, shuffle=True, seed=seed)
    dataset = real
    if synthetic is not None:
        synthetic_data, mapping = synthetic
        table = tf.constant(mapping, tf.int32)
        fake = synthetic_data.examples("train", image_size, shuffle=True, seed=seed).map(
            lambda image, label: (image, tf.gather(table, label)))
        n_real = source.num_examples("train")
        n_fake = synthetic_data.num_examples("train")
        total = float(n_real + n_fake)
        dataset = tf.data.Dataset.sample_from_datasets(
            [real, fake], weights=[n_real / total, n_fake / total], seed=seed,
            stop_on_empty_dataset=False, rerandomize_each_iteration=True)
        # Every element of both is drawn once; telling tf.data so gives Keras the epoch length.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_real + n_fake))
    dataset = dataset.batch(recipe.batch_size)
    if recipe.augment:
        # One number per batch from a seeded stream (new numbers every epoch) keys the batch.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, keys).map(
            lambda batch, key: (dihedral_augment(batch[0], tf.stack([key, seed_t])), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


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


def row_title(model: str, arm: Arm) -> str:
    title = MODEL_TITLES.get(model, model)
    return f"{title} {arm.title}" if arm.title else title


def _fingerprint(data) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_models(models: Sequence[str], options: ClassifierOptions) -> None:
    """Fail before any training on a model name or option combination that cannot work."""
    from hvitgan_tf.evaluation import gan_head  # noqa: F401  registers hvitgan_head
    from hvitgan_tf.evaluation.classifiers import available_classifiers

    if not models:
        raise UserError("--models is empty")
    unknown = [m for m in models if m not in available_classifiers()]
    if unknown:
        raise UserError(f"unknown classifier(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(available_classifiers())}")
    if len(set(models)) != len(models):
        raise UserError(f"--models names a classifier twice: {', '.join(models)}")
    if options.pretrained:
        without = [m for m in models if m not in PRETRAINABLE_MODELS and m != "hvitgan_head"]
        if without:
            raise UserError(f"--pretrained: Keras publishes ImageNet weights only for "
                            f"{', '.join(PRETRAINABLE_MODELS)}; {', '.join(without)} would "
                            "train from scratch anyway. Drop --pretrained or those models "
                            "(hvitgan_head starts from a GAN via --gan-run instead)")


def run_benchmark(out_dir: str, source, *, models: Sequence[str], arms: Sequence[Arm],
                  recipe: Recipe, repeats: int, image_size: int, seed: int = 0,
                  options: ClassifierOptions = ClassifierOptions(), gan_head=None,
                  data_info: Optional[dict] = None, log: Log = print) -> dict:
    """Train and test every model x arm x repeat (skipping finished runs), then write the
    reports. Returns the ``results.json`` content."""
    from hvitgan_tf.evaluation.classification_metrics import summarize_repeats

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
    results = {title: summarize_repeats([r["metrics"] for r in rec]) for title, rec in
               rows.items()}
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


def write_reports(out_dir: str, results, rows: Dict[str, List[dict]], summary: dict,
                  binary: bool = True) -> Dict[str, str]:
    """results.md / .csv / .json, runs.csv, roc.png, bars.png (see the module docstring)."""
    from hvitgan_tf.evaluation import reports

    files = {}
    files["markdown"] = os.path.join(out_dir, "results.md")
    with atomic_open(files["markdown"], "w", encoding="utf-8") as handle:
        handle.write(results_markdown(results, summary))
    files["csv"] = reports.write_results_csv(results, os.path.join(out_dir, "results.csv"))
    files["runs_csv"] = reports.write_runs_csv(
        {title: [r["metrics"] for r in records] for title, records in rows.items()},
        os.path.join(out_dir, "runs.csv"))
    if binary:
        from hvitgan_tf.evaluation.classification_metrics import roc_curve

        curves = {}
        for title, records in rows.items():
            per_run = []
            for record in records:
                with np.load(os.path.join(out_dir, "runs", record["run_id"] + ".npz")) as data:
                    fpr, tpr, _ = roc_curve(data["labels"], data["probabilities"][:, 1])
                per_run.append((fpr, tpr))
            grid, mean, std = reports.average_roc_curve(per_run)
            curves[title] = (grid, mean, std, results[title]["auc"].mean)
        files["roc"] = reports.plot_roc_curves(curves, os.path.join(out_dir, "roc.png"),
                                               title="Test ROC, mean over repeats "
                                                     "(positive class: label 1)")
    files["bars"] = reports.plot_metric_bars(
        results, os.path.join(out_dir, "bars.png"),
        title="Augmentation benchmark (mean ± std over repeats)")
    files["json"] = os.path.join(out_dir, "results.json")
    write_json(files["json"], {**summary, "files": files})
    return files


def results_markdown(results, summary: dict) -> str:
    """docs/method.md §9's table under a short description of how it was measured."""
    from hvitgan_tf.evaluation.reports import markdown_table

    config = summary["config"]
    recipe = config["recipe"]
    data = config["data"]
    subset = ""
    if data.get("limit"):
        subset = f", training subset --limit {data['limit']} (seed {data.get('seed', 0)})"
    elif data.get("fraction"):
        subset = f", training subset --fraction {data['fraction']} (seed {data.get('seed', 0)})"
    lines = [
        "# Augmentation benchmark",
        "",
        markdown_table(results).rstrip("\n"),
        "",
        f"Mean ± sample std over {config['repeats']} repeat(s) (seeds {config['seed']}.."
        f"{config['seed'] + config['repeats'] - 1}); test split of `{data.get('spec')}` "
        f"({sum(config['test_class_counts'])} patches), positive class "
        f"`{config['class_names'][1] if len(config['class_names']) == 2 else 'n/a'}` "
        f"(label 1).",
        "",
        f"- Training data: {config['num_train_real']} real patches{subset}.",
    ]
    for arm in config["arms"]:
        if arm["synthetic_dir"] is None:
            continue
        counts = summary["synthetic"].get(arm["key"], {}).get("images_per_class", {})
        how = ""
        if arm["plan"]:
            plan = arm["plan"]
            how = (f", generated by `{plan['model_dir']}` with threshold {plan['threshold']:g}"
                   f", truncation {plan['truncation']:g}")
        lines.append(f"- {arm['title']}: + {sum(counts.values())} synthetic patches "
                     f"({', '.join(f'{k} {v}' for k, v in counts.items())}){how}.")
    options = config["classifier_options"]
    lines += [
        f"- Images at {config['image_size']} px; Adam (lr {recipe['learning_rate']:g}), batch "
        f"{recipe['batch_size']}, {recipe['epochs']} epoch(s), "
        + ("random rot90/flip augmentation" if recipe["augment"] else "no augmentation")
        + "; the same recipe for every model.",
        f"- ResNet width multiplier {options['width_multiplier']:g}"
        + (", small-input stem" if options["small_input"] else "")
        + ("; DenseNet169 from ImageNet weights" if options["pretrained"] else "")
        + _head_text(config) + ".",
        "",
    ]
    return "\n".join(lines)


def _head_text(config: dict) -> str:
    if "hvitgan_head" not in config["models"]:
        return ""
    if config.get("gan_head_pretrained"):
        return (f"; own class head: the GAN's discriminator from {config['gan_head']}, "
                "fine-tuned")
    return f"; own class head: the GAN's discriminator architecture ({config['gan_head']})"
