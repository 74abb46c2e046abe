"""Best checkpoint by validation FID during training (docs/method.md §9: "best epoch = lowest FID on
the validation split").

``FIDSelection`` holds the options (``hvitgan-tf train --fid-every N --fid-features NAME
--fid-samples N``); ``ValidationFID`` is the Keras callback the runner adds when they are on.

What one evaluation does, after an epoch:

1. draws ``num_samples`` images from the EMA generator (the network that is sampled and
   exported, docs/method.md §4), with labels in proportion to the *training* class counts (the prior
   the GAN was trained to reproduce), fixed seeds ``seed, seed + 1, ...`` and ψ = 1 through
   ``hvitgan_tf.noise.truncated_noise``. The latents never change, so FID differences between
   epochs come from the weights alone;
2. computes FID and KID of their features against the validation split's statistics, which are
   computed once per run (cached in ``RUN_DIR/fid_reference/``);
3. puts ``val_fid`` and ``val_kid`` into the epoch's logs. The callback sits before the
   CSV logger and TensorBoard in the runner's list, so both land in ``metrics.csv`` and in
   TensorBoard's ``validation`` run (as ``epoch_fid`` / ``epoch_kid``);
4. if the FID is the lowest so far, saves the training state at this iteration (reusing the
   checkpoint the epoch-end saver has just written) and records it in ``best.json`` with the
   scores, so ``export_run(..., checkpoint="best")`` exports it. Pruning never deletes the
   checkpoint ``best.json`` names (``checkpoints.prune``).

When: after the first epoch of every ``train`` call, every ``every``-th epoch, and after the
last epoch. The first epoch is included because Keras's ``CSVLogger`` fixes its columns from the
first epoch's logs; evaluating it keeps ``val_fid`` a column from the start (also after
``--resume``) and gives the curve a starting point.

The default extractor ``inception`` needs InceptionV3's ImageNet weights, which cannot be
downloaded here; that is why ``every`` defaults to 0 (off). ``classifier:PATH`` (a classifier's
or an exported GAN's ``features`` signature) works offline.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf.errors import UserError
from hvitgan_tf.metrics.distances import KID_SUBSET_SIZE, KID_SUBSETS
from hvitgan_tf.metrics.feature_extractors import get_feature_extractor
from hvitgan_tf.metrics.feature_metrics import fid_kid_against_reference
from hvitgan_tf.metrics.generation_plan import generation_plan
from hvitgan_tf.metrics.reference_statistics import real_statistics
from hvitgan_tf.noise import truncated_noise
from hvitgan_tf.training import checkpoints

#: First seed of the fixed FID latents; far from the sample grid's seeds 0..k (any value works).
FID_FIRST_SEED = 1_000_000
#: Folder of the run's cached validation statistics.
REFERENCE_FOLDER = "fid_reference"
#: The runner's per-epoch CSV log, and where its rows go when FID is switched on by a resume.
METRICS_FILE = "metrics.csv"
METRICS_BEFORE_FID_FILE = "metrics-before-fid.csv"


@dataclasses.dataclass(frozen=True)
class FIDSelection:
    """How (and whether) training scores the EMA generator and keeps the best checkpoint.

    Attributes:
        every: evaluate every this many epochs; 0 turns the selection off.
        features: feature extractor (``inception``, ``inception:WEIGHTS.h5``,
            ``classifier:SAVED_MODEL``), see ``hvitgan_tf.metrics.feature_extractors``.
        num_samples: generated images per evaluation (also the KID sample size).
        batch_size: images per generator / extractor call.
    """

    every: int = 0
    features: str = "inception"
    num_samples: int = 1000
    batch_size: int = 64

    def __post_init__(self):
        if self.every < 0:
            raise UserError(f"--fid-every must be >= 0, got {self.every}")
        if self.num_samples < 2:
            raise UserError(f"--fid-samples must be >= 2 (FID needs a covariance), got "
                            f"{self.num_samples}")
        if self.batch_size < 1:
            raise UserError(f"the FID batch size must be >= 1, got {self.batch_size}")

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data) -> "FIDSelection":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in dict(data or {}).items() if k in known})


class ValidationFID(keras.callbacks.Callback):
    """Scores the EMA generator by validation FID/KID and marks the best checkpoint.

    Args:
        run_dir: the run folder (checkpoints, ``fid_reference/``).
        source: the training ``DataSource``; its ``validation`` split is the reference.
        settings: ``FIDSelection``.
        image_size, latent_dim: the generator's.
        class_counts: training examples per class (the label prior of the samples).
        counter: the runner's ``IterationCounter``; ``guard``: its ``DivergenceGuard``.
        steps_per_epoch: iterations per epoch (for the checkpoint's epoch number).
        extractor: a ready ``FeatureExtractor`` (default: built from ``settings.features``).
        verbose: print one line per evaluation.

    The extractor is built in the constructor, so a missing weights file stops the run before
    the first training step rather than after the first epoch.
    """

    def __init__(self, run_dir, source, settings: FIDSelection, *, image_size: int,
                 latent_dim: int, class_counts, counter, guard, steps_per_epoch: int,
                 extractor=None, verbose: bool = True):
        super().__init__()
        if not settings.enabled:
            raise ValueError("ValidationFID needs settings.every >= 1")
        if "validation" not in source.split_names or source.num_examples("validation") < 2:
            raise UserError(f"{source.spec} has no validation split with at least 2 images; "
                            "FID-based checkpoint selection needs one (or use --fid-every 0)")
        self.run_dir = os.fspath(run_dir)
        self.source = source
        self.settings = settings
        self.image_size = int(image_size)
        self.latent_dim = int(latent_dim)
        self.counter = counter
        self.guard = guard
        self.steps_per_epoch = int(steps_per_epoch)
        self.verbose = verbose
        self.extractor = extractor or get_feature_extractor(
            settings.features, batch_size=settings.batch_size)
        self.labels, self.seeds = generation_plan(class_counts, settings.num_samples,
                                                  FID_FIRST_SEED)
        self.reference = None
        self.best_fid = self._previous_best()
        self.history = []  # (epoch, iteration, fid, kid) of every evaluation
        self._evaluated_once = False

    # -- state carried across --resume -------------------------------------------------------
    def _selection_id(self) -> dict:
        """What makes two FIDs comparable: the extractor (and its weights) and the sample."""
        return {"fid_features": self.extractor.cache_id,
                "fid_samples": int(self.settings.num_samples)}

    def _previous_best(self) -> float:
        try:
            record = checkpoints.read_record(self.run_dir, "best")
        except UserError:
            record = None  # best.json names a deleted file: start afresh
        if not record or "val_fid" not in record:
            return math.inf
        if all(record.get(k) == v for k, v in self._selection_id().items()):
            return float(record["val_fid"])
        print(f"note: {self.run_dir}'s best checkpoint was scored with other FID settings; "
              "the next evaluation replaces it", file=sys.stderr)
        return math.inf

    # -- evaluation --------------------------------------------------------------------------
    def _reference_statistics(self):
        if self.reference is None:
            self.reference = real_statistics(
                self.source, "validation", self.image_size, self.extractor,
                cache_dir=os.path.join(self.run_dir, REFERENCE_FOLDER),
                batch_size=self.settings.batch_size)
        return self.reference

    def generated_images(self, generator):
        """The fixed-latent samples of ``generator``, float ``[-1, 1]`` batches."""
        size = self.settings.batch_size
        for start in range(0, len(self.labels), size):
            labels = tf.constant(self.labels[start:start + size])
            noise = truncated_noise(tf.constant(self.seeds[start:start + size]),
                                    self.latent_dim, 1.0)
            images = generator([noise, labels], training=False)
            yield np.clip(np.asarray(images, dtype=np.float32), -1.0, 1.0)

    def score(self, generator) -> dict:
        """``{"fid", "kid", "kid_std", "num_fake"}`` of ``generator`` against validation."""
        return fid_kid_against_reference(
            self.extractor, self._reference_statistics(), self.generated_images(generator),
            num_subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE,
            batch_size=self.settings.batch_size)

    def on_train_begin(self, logs=None):
        # A run resumed with FID selection newly switched on: Keras's CSVLogger would append
        # rows with two more columns under the old header. Keep the earlier epochs in a file of
        # their own; the logger (after this callback) then starts metrics.csv afresh.
        path = os.path.join(self.run_dir, METRICS_FILE)
        if not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().strip().split(",")
        if header != [""] and "val_fid" not in header:
            kept = os.path.join(self.run_dir, METRICS_BEFORE_FID_FILE)
            os.replace(path, kept)
            print(f"note: {path} gains val_fid/val_kid columns; the epochs before FID "
                  f"selection was switched on are in {kept}", file=sys.stderr)

    def _due(self, epoch: int) -> bool:
        last = (self.params or {}).get("epochs")
        return (not self._evaluated_once or (epoch + 1) % self.settings.every == 0
                or (last is not None and epoch + 1 >= last))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.stopped:
            return  # NaN/Inf weights: nothing to score, and never a best checkpoint
        if not self._due(epoch):
            return
        began = time.time()
        scores = self.score(self.model.ema_generator)
        self._evaluated_once = True
        fid, kid = scores["fid"], scores["kid"]
        if logs is not None:
            logs["val_fid"] = fid
            logs["val_kid"] = kid
        iteration = self.counter.iteration
        self.history.append((epoch, iteration, fid, kid))
        improved = fid < self.best_fid
        if improved:
            self.best_fid = fid
            self._mark_best(iteration, fid, kid, scores["kid_std"])
        if self.verbose:
            flag = " (best so far, saved as best.json)" if improved else ""
            print(f"\nepoch {epoch + 1}: validation FID {fid:.4g}, KID {kid:.4g} "
                  f"({len(self.labels)} samples, {time.time() - began:.0f} s){flag}",
                  flush=True)

    def _mark_best(self, iteration, fid, kid, kid_std):
        last = checkpoints.read_record(self.run_dir, "last")
        scores = {"val_fid": float(fid), "val_kid": float(kid), "val_kid_std": float(kid_std),
                  **self._selection_id()}
        if last is not None and int(last["iteration"]) == int(iteration):
            # The epoch-end saver ran first and wrote exactly these weights: no second copy.
            record = {k: v for k, v in last.items() if k != "path"}
            record.update(scores)
        else:
            record = checkpoints.save(self.model, self.run_dir, iteration,
                                      epoch=iteration // self.steps_per_epoch, extra=scores)
        checkpoints.mark_best(self.run_dir, record)


def validation_fid_callback(run_dir, source, settings: FIDSelection, model_config, data_info,
                            counter, guard, steps_per_epoch, verbose=True):
    """The runner's hook: a ``ValidationFID`` for this run, or None when selection is off."""
    if settings is None or not settings.enabled:
        return None
    return ValidationFID(run_dir, source, settings, image_size=model_config.image_size,
                         latent_dim=model_config.latent_dim,
                         class_counts=data_info["class_counts"], counter=counter, guard=guard,
                         steps_per_epoch=steps_per_epoch, verbose=bool(verbose))
