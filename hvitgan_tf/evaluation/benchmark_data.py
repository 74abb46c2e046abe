"""The benchmark's training data: synthetic sets generated for an arm, and the batches one run
trains on (real + synthetic, interleaved, dihedral augmentation). See ``benchmark``.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.benchmark_arms import Arm, Log, Recipe
from hvitgan_tf.fileio import read_json, write_json


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


