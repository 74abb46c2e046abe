"""What ``hvitgan-tf evaluate`` computes, as library functions (docs/method.md §9).

Image quality (FID / KID against one split of a data source):

- ``generator_fid(model_dir, source, split, extractor, ...)``: ``num_samples`` images from an
  exported GAN's ``generate`` signature (docs/method.md §7, ``hvitgan_tf.exported_model``),
  labels drawn in proportion to the split's class counts, seeds ``seed, seed + 1, ...``,
  truncation ψ.
- ``folder_fid(samples_dir, source, split, extractor, ...)``: images already written to disk
  (``hvitgan-tf sample`` output, or any ``folder:`` layout).

Why the labels follow the split's class prior: FID compares two image distributions, and the
real side is the split as it is. Generating equal numbers per class against an imbalanced split
would add a class-mix mismatch to the distance that says nothing about image quality.

Classification (docs/method.md §9's metrics): ``classifier_metrics(model_dir, source, split)`` runs
the
``classify`` signature of an exported GAN (its discriminator's class head) or of a classifier
written by ``hvitgan_tf.export.classifier.export_classifier`` over the split: accuracy, ROC AUC,
sensitivity, specificity (positive class = label 1) and the confusion matrix.

Image sizes: the real images are brought to the evaluated model's size by the data pipeline's
own rule (``hvitgan_tf.data.to_model_input``: centre crop, antialiased bilinear resize), the
same rule the GAN was trained with; sample folders are read through the same pipeline.

Real-data feature statistics are cached on disk (``hvitgan_tf.metrics.reference_statistics``)
under its ``default_cache_dir()`` unless the caller passes ``cache_dir=None``. TensorFlow is
imported on use, not at import.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from hvitgan_tf import imaging
from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import (ExportedModel, image_input, load_saved_model,
                                       read_metadata, resolve_model_dir, signature)
from hvitgan_tf.metrics.distances import KID_SUBSET_SIZE, KID_SUBSETS
from hvitgan_tf.metrics.generation_plan import generation_plan
from hvitgan_tf.metrics.reference_statistics import real_statistics


# -- FID / KID ---------------------------------------------------------------------------------

def _resized_uint8(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 images at ``image_size`` by the data pipeline's resize rule (unchanged if equal)."""
    if images.shape[1:3] == (image_size, image_size):
        return images
    from hvitgan_tf.data import to_model_input

    return imaging.to_uint8(to_model_input(images, image_size).numpy())


def _fid_kid(extractor, reference, batches, batch_size, seed):
    from hvitgan_tf.metrics.feature_metrics import fid_kid_against_reference

    return fid_kid_against_reference(extractor, reference, batches, num_subsets=KID_SUBSETS,
                                     subset_size=KID_SUBSET_SIZE, seed=seed,
                                     batch_size=batch_size)


def generator_fid(model_dir: str, source, split: str, extractor, *, num_samples: int,
                  truncation: float = 1.0, seed: int = 0, batch_size: int = 64,
                  image_size: Optional[int] = None, cache_dir: Optional[str] = None,
                  refresh: bool = False, progress=None) -> dict:
    """FID/KID of ``num_samples`` images of an exported GAN against ``source``'s ``split``.

    ``image_size`` defaults to the generator's; when given and different, generated images
    are resized by the data pipeline's rule too. ``progress(done, total)`` is called per batch.
    """
    generator = ExportedModel(model_dir)
    if truncation < 0:
        raise UserError(f"truncation must be >= 0, got {truncation}")
    _check_classes(generator.class_names, source, generator.model_dir)
    size = int(image_size or generator.image_size)
    reference = real_statistics(source, split, size, extractor, cache_dir=cache_dir,
                                batch_size=batch_size, refresh=refresh)
    counts = source.class_counts(split)
    labels, seeds = generation_plan(counts, num_samples, seed)
    confidences = []

    def images():
        for start in range(0, len(labels), batch_size):
            stop = min(start + batch_size, len(labels))
            batch = generator.generate(labels[start:stop], seeds[start:stop], truncation)
            confidences.append(batch["confidence"])
            if progress is not None:
                progress(stop, len(labels))
            yield _resized_uint8(batch["images"], size)

    scores = _fid_kid(extractor, reference, images(), batch_size, seed)
    confidence = np.concatenate(confidences) if confidences else np.zeros([0])
    names = _class_names(generator.class_names, source)
    return {
        "what": "generator",
        "model": generator.model_dir,
        "truncation": float(truncation),
        "seed": int(seed),
        **_fid_common(scores, reference, extractor, source, split, size),
        "class_counts_generated": dict(zip(names, np.bincount(labels, minlength=len(names))
                                           .astype(int).tolist())),
        # The class head's confidence in the requested label (docs/method.md §6.3's selection
        # score).
        "mean_confidence": {name: float(confidence[labels == c].mean())
                            for c, name in enumerate(names) if np.any(labels == c)},
    }


def folder_fid(samples_dir: str, source, split: str, extractor, *,
               num_samples: Optional[int] = None, seed: int = 0, batch_size: int = 64,
               image_size: Optional[int] = None, cache_dir: Optional[str] = None,
               refresh: bool = False, skip_bad: bool = False) -> dict:
    """FID/KID of the images in ``samples_dir`` (``<class>/<image>`` layout) against a split.

    All images are used, or a seeded random ``num_samples`` of them. ``image_size`` defaults
    to the samples' common size (the generator's), else the data's native size.
    """
    from hvitgan_tf.data import open_source

    samples = open_source(f"folder:{samples_dir}", split_fractions=(1.0, 0.0, 0.0),
                          skip_bad=skip_bad)
    size = int(image_size or samples.native_image_size or source.native_image_size or 0)
    if size < 1:
        raise UserError(f"the images in {samples_dir} and {source.spec} have no common size; "
                        "pass --image-size")
    available = samples.num_examples("train")
    count = available if num_samples is None else min(int(num_samples), available)
    if count < 2:
        raise UserError(f"{samples_dir} holds {available} image(s); FID needs at least 2")
    reference = real_statistics(source, split, size, extractor, cache_dir=cache_dir,
                                batch_size=batch_size, refresh=refresh)
    dataset = samples.examples("train", size, shuffle=count < available, seed=seed)
    batches = dataset.take(count).batch(batch_size)
    scores = _fid_kid(extractor, reference, batches, batch_size, seed)
    return {
        "what": "folder",
        "samples": os.path.abspath(samples_dir),
        "num_available": int(available),
        **_fid_common(scores, reference, extractor, source, split, size),
        "sample_classes": dict(zip(samples.class_names, samples.class_counts("train"))),
    }


def _fid_common(scores, reference, extractor, source, split, size) -> dict:
    return {
        "fid": float(scores["fid"]),
        "kid": float(scores["kid"]),
        "kid_std": float(scores["kid_std"]),
        "num_generated": int(scores["num_fake"]),
        "num_real": int(reference.count),
        "features": extractor.name,
        "feature_dim": int(extractor.feature_dim),
        "data": source.spec,
        "split": split,
        "image_size": int(size),
    }


# -- classification ----------------------------------------------------------------------------

def classifier_metrics(model_dir: str, source, split: str, *, batch_size: int = 64,
                       threshold: float = 0.5, progress=None) -> dict:
    """docs/method.md §9's metrics of the ``classify`` signature of a SavedModel on ``source``'s
    split.

    Binary data: accuracy, ``auc``, ``sensitivity``, ``specificity`` with label 1 positive
    and a positive call at ``p(label 1) >= threshold``; more classes: accuracy and macro
    one-vs-rest AUC. Always the confusion matrix (rows = true class, columns = arg-max
    prediction).
    """
    import tensorflow as tf

    from hvitgan_tf.evaluation.classification_metrics import (classification_metrics,
                                                              confusion_matrix)

    path = resolve_model_dir(model_dir)
    loaded = load_saved_model(path)  # keep: it owns the variables
    classify = signature(loaded, "classify", path)
    input_name, dtype, static_size = image_input(classify, "classify", path)
    metadata = read_metadata(path)
    names = list(metadata.get("class_names") or [])
    _check_classes(names, source, path)
    size = (static_size[0] if static_size else None) or metadata.get("image_size") \
        or source.native_image_size
    if not size:
        raise UserError(f"cannot tell the input size of {path}'s classify signature")
    labels, probabilities = [], []
    total = source.num_examples(split)
    for images, batch_labels in source.batches(split, int(size), batch_size):
        if dtype == tf.uint8:
            # Same rounding as the PNG files the model would otherwise read.
            images = tf.constant(imaging.to_uint8(images.numpy()))
        out = classify(**{input_name: images})
        probabilities.append(out["probabilities"].numpy())
        labels.append(batch_labels.numpy())
        if progress is not None:
            progress(sum(len(b) for b in labels), total)
    if not labels:
        raise UserError(f"the {split} split of {source.spec} is empty")
    labels = np.concatenate(labels).astype(np.int64)
    probabilities = np.concatenate(probabilities).astype(np.float64)
    num_classes = probabilities.shape[1]
    if num_classes != source.num_classes:
        raise UserError(f"{path} predicts {num_classes} classes but {source.spec} has "
                        f"{source.num_classes}")
    try:
        metrics = classification_metrics(labels, probabilities, threshold=threshold)
    except ValueError as error:  # e.g. a split holding one class only: no AUC
        raise UserError(f"cannot score the {split} split of {source.spec}: {error}") from None
    return {
        "what": "classifier",
        "model": path,
        "data": source.spec,
        "split": split,
        "image_size": int(size),
        "num_examples": int(len(labels)),
        "class_names": _class_names(names, source),
        "threshold": float(threshold),
        "positive_class": _class_names(names, source)[1] if num_classes == 2 else None,
        "metrics": {key: float(value) for key, value in metrics.items()},
        "confusion_matrix": confusion_matrix(labels, probabilities.argmax(axis=1),
                                             num_classes).tolist(),
    }


def _class_names(model_names: Sequence[str], source) -> list:
    return list(model_names) if model_names else list(source.class_names)


def _check_classes(model_names: Sequence[str], source, path: str) -> None:
    """A model trained on other classes cannot be scored on this data."""
    if model_names and len(model_names) != source.num_classes:
        raise UserError(f"{path} knows {len(model_names)} classes ({', '.join(model_names)}) "
                        f"but {source.spec} has {source.num_classes} "
                        f"({', '.join(source.class_names)})")
