"""Is the GAN learning? Numbers that say so, measured with a judge the GAN never trained against.

The discriminator's own class head cannot certify the generator: both are trained on each
other, and a head that learned one stain colour per class will happily call flat colour fields
confident members of their class. Here an **independent reference classifier** (a small CNN
trained on the real training split only) looks at the EMA generator's samples:

* ``conditioning_accuracy``: the share of samples generated for class ``c`` that the reference
  classifier puts in class ``c`` (chance: ``1 / num_classes``);
* ``fid`` / ``kid``: Fréchet and kernel distances between generated and held-out real images
  in the reference classifier's feature space (a domain FID that needs no ImageNet weights);
* ``diversity``: mean pairwise feature distance between samples of the same class, generated
  divided by real (1 = as varied as the data, near 0 = every sample alike);
* ``d_head_accuracy``: the discriminator's class head on the real validation split;
* pixel-level checks that need no classifier: ``label_effect`` (mean absolute difference
  between two images made from the same noise with different labels), ``noise_effect`` (the
  same for two noises and one label) and ``pixel_std`` (within-image standard deviation;
  generated divided by real, ``pixel_std_ratio``, near 0 means flat colour fields);
* on stained tissue (``RealReference.build(..., tissue=True)``), nuclei: connected blobs of
  strong haematoxylin per patch (``nuclei_per_patch``, generated divided by real
  ``nuclei_ratio``) and their mean area (``nuclei_area_ratio``). Blurred or grainy samples
  with the right colours and detail still score low here: blur flattens the blobs under the
  threshold and grain breaks them into specks below the minimum area.

``LearningProbe`` is the Keras callback that records all of them at fixed iterations of a
training run; ``benchmarks/learning.py`` drives it and draws the curves and sample grids.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf.fileio import atomic_path
from hvitgan_tf.metrics.distances import kernel_inception_distance
from hvitgan_tf.metrics.feature_statistics import FeatureStatistics
from hvitgan_tf.noise import truncated_noise
from hvitgan_tf.training.callbacks import class_rows_grid

FEATURE_DIM = 64


def build_reference_classifier(image_size: int, num_classes: int,
                               feature_dim: int = FEATURE_DIM) -> keras.Model:
    """A small VGG-style CNN: ``[N, S, S, 3]`` in ``[-1, 1]`` -> ``(probabilities, features)``.

    Three stages of two 3x3 ReLU convolutions (32, 64, 128 channels), global average pooling
    and a ``feature_dim`` ReLU layer whose output is the feature space of the FID, KID and
    diversity numbers. Convolutions on purpose: the judge should not share the transformer's
    inductive biases. No batch norm: after the few hundred steps the judge trains for, its
    moving statistics still lag the weights, and validation accuracy came out at 0.16 with
    training accuracy at 0.99.
    """
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for stage, width in enumerate((32, 64, 128)):
        for k in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                    name=f"conv{stage}_{k}")(x)
        if stage < 2:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    probabilities = keras.layers.Softmax(name="probabilities", dtype="float32")(logits)
    return keras.Model(inputs, [probabilities, features], name="reference_classifier")


class ReferenceClassifier:
    """The independent judge: trained once on the real training split, then frozen."""

    def __init__(self, model: keras.Model):
        self.model = model
        self._predict = tf.function(lambda images: model(images, training=False))
        self.validation_accuracy = None

    @classmethod
    def train(cls, source, image_size: int, *, epochs: int = 8, batch_size: int = 64,
              seed: int = 0, cache_dir: Optional[str] = None, log=print
              ) -> "ReferenceClassifier":
        """Fit on ``source``'s training split with random shifts (no flips: the judge must
        keep orientation, a mirrored 2 is not a 2) and report validation accuracy.

        With ``cache_dir`` the weights are kept there, keyed by data, size, epochs and seed,
        and a second benchmark run on the same data reuses them.
        """
        keras.utils.set_random_seed(seed)
        model = build_reference_classifier(image_size, source.num_classes)
        cached = None
        if cache_dir:
            name = "".join(c if c.isalnum() else "_" for c in source.spec)
            cached = os.path.join(cache_dir, f"judge-{name}-{image_size}px-{epochs}ep-"
                                             f"seed{seed}.weights.h5")
            if os.path.exists(cached):
                model.load_weights(cached)
                judge = cls(model)
                judge._score(source, image_size)
                log(f"reference classifier: {cached}, validation accuracy "
                    f"{judge.validation_accuracy:.3f}")
                return judge
        trainer = keras.Model(model.input, model.outputs[0])
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        pad = max(1, image_size // 16)

        def shift(images, labels):
            padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
            return tf.image.random_crop(padded, tf.shape(images), seed=seed), labels

        data = source.batches("train", image_size, batch_size, shuffle=True, seed=seed,
                              drop_remainder=True).map(shift)
        started = time.time()
        trainer.fit(data, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles
        judge = cls(model)
        judge._score(source, image_size)
        if cached:
            os.makedirs(cache_dir, exist_ok=True)
            with atomic_path(cached, suffix=".weights.h5") as tmp:
                model.save_weights(tmp)
        log(f"reference classifier: {epochs} epochs in {time.time() - started:.0f} s, "
            f"validation accuracy {judge.validation_accuracy:.3f}")
        return judge

    def _score(self, source, image_size):
        images, labels = real_arrays(source, "validation", image_size)
        self.validation_accuracy = float(np.mean(self.predict(images)[0].argmax(1) == labels))

    def predict(self, images, batch_size: int = 256):
        """``(probabilities [N, C], features [N, FEATURE_DIM])`` as NumPy arrays."""
        probabilities, features = [], []
        for start in range(0, len(images), batch_size):
            p, f = self._predict(tf.convert_to_tensor(images[start:start + batch_size]))
            probabilities.append(p.numpy())
            features.append(f.numpy())
        return np.concatenate(probabilities), np.concatenate(features)


def real_arrays(source, split: str, image_size: int, limit: Optional[int] = None):
    """``(images float32 [N, S, S, 3] in [-1, 1], labels int32 [N])`` of a whole split."""
    images, labels = [], []
    for batch, label in source.batches(split, image_size, 256).as_numpy_iterator():
        images.append(batch)
        labels.append(label)
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean Euclidean distance over all unordered pairs of rows (float64)."""
    x = np.asarray(features, np.float64)
    if len(x) < 2:
        return float("nan")
    squared = np.sum(x * x, axis=1)
    d2 = np.maximum(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0)
    upper = np.triu_indices(len(x), k=1)
    return float(np.mean(np.sqrt(d2[upper])))


def class_diversity(features: np.ndarray, labels: np.ndarray, num_classes: int) -> List[float]:
    """Mean pairwise feature distance within each class."""
    return [mean_pairwise_distance(features[labels == c]) for c in range(num_classes)]


@dataclass
class RealReference:
    """What every measurement compares against, computed once per benchmark run."""

    judge: ReferenceClassifier
    heldout_features: np.ndarray  # validation + test, reference classifier features
    heldout_statistics: FeatureStatistics  # their mean and covariance, for every FID
    heldout_diversity: List[float]  # per class
    heldout_pixel_std: float
    validation_images: np.ndarray  # for the discriminator's class head
    validation_labels: np.ndarray
    num_classes: int
    # Stained tissue only (else None): the haematoxylin level that counts as nuclear (the
    # held-out patches' NUCLEI_PERCENTILE), and their nuclei statistics at that level.
    nuclei_threshold: Optional[float] = None
    nuclei_real: Optional[Dict[str, float]] = None

    @classmethod
    def build(cls, source, image_size: int, judge: ReferenceClassifier,
              tissue: bool = False) -> "RealReference":
        parts = [real_arrays(source, split, image_size) for split in ("validation", "test")]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        _, features = judge.predict(images)
        validation_images, validation_labels = parts[0]
        threshold = nuclei_real = None
        if tissue:
            density = haematoxylin(images)
            threshold = float(np.percentile(density, NUCLEI_PERCENTILE))
            nuclei_real = _nuclei_in(density, threshold, labels, source.num_classes)
        return cls(judge, features, FeatureStatistics.from_features(features),
                   class_diversity(features, labels, source.num_classes),
                   pixel_std(images), validation_images, validation_labels, source.num_classes,
                   threshold, nuclei_real)


#: Percentile of the held-out real pixels' haematoxylin density above which a pixel counts as
#: nuclear: the strongest tenth (on the demo patches at 32 px this outlines the nuclei and
#: little else).
NUCLEI_PERCENTILE = 90.0
#: Smallest blob that counts as a nucleus, in pixels of a 32-pixel patch (scaled by area).
NUCLEI_MIN_AREA_32 = 4


def haematoxylin(images) -> np.ndarray:
    """``[N, S, S]`` haematoxylin optical density of ``[N, S, S, 3]`` images in [-1, 1]
    (Ruifrok-Johnston colour deconvolution, ``skimage.color.rgb2hed``)."""
    from skimage.color import rgb2hed

    rgb = np.clip((np.asarray(images, np.float64) + 1.0) / 2.0, 0.0, 1.0)
    n, height, width, _ = rgb.shape
    return rgb2hed(rgb.reshape(n * height, width, 3))[..., 0].reshape(n, height, width)


def nuclei(images, threshold: float, labels=None, num_classes: int = 0) -> Dict[str, object]:
    """Blobs of haematoxylin above ``threshold`` (4-connected, at least
    ``NUCLEI_MIN_AREA_32`` pixels at 32 px): ``per_patch`` (mean count) and ``area`` (mean
    pixels per blob, 0 when there is none); with ``labels``, also ``per_class`` (mean count
    per patch of each of ``num_classes`` classes)."""
    return _nuclei_in(haematoxylin(images), threshold, labels, num_classes)


def _nuclei_in(density, threshold, labels=None, num_classes=0):
    from scipy import ndimage

    min_area = max(2, round(NUCLEI_MIN_AREA_32 * (density.shape[1] / 32.0) ** 2))
    counts, areas = [], []
    for image in density:
        blobs, n = ndimage.label(image > threshold)
        sizes = np.bincount(blobs.ravel(), minlength=n + 1)[1:]
        kept = sizes[sizes >= min_area]
        counts.append(len(kept))
        areas.extend(kept.tolist())
    counts = np.asarray(counts, np.float64)
    found = {"per_patch": float(counts.mean()),
             "area": float(np.mean(areas)) if areas else 0.0}
    if labels is not None:
        labels = np.asarray(labels)
        found["per_class"] = [float(counts[labels == c].mean()) if np.any(labels == c)
                              else float("nan") for c in range(num_classes)]
    return found


def pixel_std(images) -> float:
    """Mean within-image standard deviation (over pixels and channels), in [-1, 1] units."""
    return float(np.mean(np.std(np.asarray(images, np.float64), axis=(1, 2, 3))))


def neighbour_differences(images, axis: int) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels along ``axis`` (1: rows, 2:
    columns), per boundary line: ``[S - 1]``, averaged over images, the other axis and channels."""
    images = np.asarray(images, np.float64)
    steps = np.abs(np.diff(images, axis=axis))  # [N, S-1, S, 3] or [N, S, S-1, 3]
    other = 2 if axis == 1 else 1
    return steps.mean(axis=(0, other, 3))


def detail(images) -> float:
    """Mean absolute step between neighbouring pixels (both directions), in [-1, 1] units: how
    much fine structure (edges, nuclei, texture) the images carry; a flat field gives 0."""
    return float(np.mean([neighbour_differences(images, axis).mean() for axis in (1, 2)]))


def seam_ratio(images, pitch: int) -> float:
    """Steps across the lines at multiples of ``pitch`` pixels divided by the steps across every
    other line. Natural patches give about 1; a picture made of ``pitch``-pixel squares gives
    more (its edges all sit on those lines). NaN if ``pitch`` leaves no such line."""
    ratios = []
    for axis in (1, 2):
        steps = neighbour_differences(images, axis)
        on_seam = np.zeros(len(steps), bool)
        on_seam[pitch - 1::pitch] = True  # the step from pixel pitch-1 to pixel pitch, ...
        if not on_seam.any() or on_seam.all():
            return float("nan")
        ratios.append(steps[on_seam].mean() / max(steps[~on_seam].mean(), 1e-12))
    return float(np.mean(ratios))


def generate(generator, labels, seeds, truncation: float = 1.0, batch_size: int = 200):
    """Images ``[N, S, S, 3]`` float32 from fixed per-sample seeds (``hvitgan_tf.noise``)."""
    latent = generator.config.latent_dim
    out = []
    for start in range(0, len(labels), batch_size):
        z = truncated_noise(tf.constant(seeds[start:start + batch_size], tf.int64), latent,
                            truncation)
        y = tf.constant(labels[start:start + batch_size], tf.int32)
        out.append(np.asarray(generator([z, y], training=False)))
    return np.concatenate(out)


def measure(generator, discriminator, reference: RealReference, *, samples_per_class: int,
            seed: int = 1_000_000, truncation: float = 1.0) -> Dict[str, object]:
    """Every learning number for one generator (normally the EMA one) and discriminator."""
    k = reference.num_classes
    # Pixels per token of each stage's grid coarser than the pixels: where blocky samples
    # (each token painting its own square) show their seams.
    pitches = [generator.config.image_size // g for g in generator.config.stage_grids
               if generator.config.image_size // g >= 2]
    labels = np.repeat(np.arange(k, dtype=np.int32), samples_per_class)
    seeds = seed + np.tile(np.arange(samples_per_class, dtype=np.int64), k)
    fakes = generate(generator, labels, seeds, truncation)
    probabilities, features = reference.judge.predict(fakes)
    predicted = probabilities.argmax(1)
    per_class_accuracy = [float(np.mean(predicted[labels == c] == c)) for c in range(k)]
    diversity = class_diversity(features, labels, k)
    ratios = [g / r for g, r in zip(diversity, reference.heldout_diversity) if r > 0]
    kid = kernel_inception_distance(reference.heldout_features, features,
                                    subset_size=min(100, len(features),
                                                    len(reference.heldout_features)))
    fid = reference.heldout_statistics.frechet_distance(FeatureStatistics.from_features(features))

    # Same noise, next label (cyclically); same label, other noise. Pixel units, [-1, 1].
    shifted = generate(generator, (labels + 1) % k, seeds, truncation)
    other_noise = generate(generator, labels, seeds + samples_per_class, truncation)
    _, head_logits = _batched(discriminator, reference.validation_images)
    return {
        "conditioning_accuracy": float(np.mean(per_class_accuracy)),
        "conditioning_accuracy_per_class": per_class_accuracy,
        "fid": float(fid),
        "kid": float(kid.mean),
        "diversity": float(np.mean(ratios)) if ratios else float("nan"),
        "diversity_per_class": [float(r) for r in ratios],
        "d_head_accuracy": float(np.mean(head_logits.argmax(1) == reference.validation_labels)),
        "label_effect": float(np.mean(np.abs(fakes - shifted))),
        "noise_effect": float(np.mean(np.abs(fakes - other_noise))),
        "pixel_std": pixel_std(fakes),
        "pixel_std_ratio": pixel_std(fakes) / reference.heldout_pixel_std,
        # Texture: fine detail relative to the real patches (1.0 = as much), and how strongly
        # edges line up with the stages' token grids, worst grid (real patches: about 1).
        "detail_ratio": detail(fakes) / max(detail(reference.validation_images), 1e-12),
        "seam_ratio": max(seam_ratio(fakes, p) for p in pitches),
        "seam_ratio_real": max(seam_ratio(reference.validation_images, p) for p in pitches),
        **_nuclei_record(fakes, labels, reference),
    }


def _nuclei_record(fakes, labels, reference: RealReference) -> Dict[str, object]:
    if reference.nuclei_threshold is None:
        return {}
    real = reference.nuclei_real
    fake = nuclei(fakes, reference.nuclei_threshold, labels, len(real["per_class"]))
    # Per class too: one class's missing nuclei can hide behind another's surplus of specks.
    per_class = [f / max(r, 1e-12) for f, r in zip(fake["per_class"], real["per_class"])]
    return {"nuclei_per_patch": fake["per_patch"], "nuclei_per_patch_real": real["per_patch"],
            "nuclei_ratio": fake["per_patch"] / max(real["per_patch"], 1e-12),
            "nuclei_ratio_per_class": per_class,
            "nuclei_area_ratio": fake["area"] / max(real["area"], 1e-12)}


def _batched(discriminator, images, batch_size: int = 256):
    sources, logits = [], []
    for start in range(0, len(images), batch_size):
        s, c = discriminator(tf.convert_to_tensor(images[start:start + batch_size]),
                             training=False)
        sources.append(np.asarray(s))
        logits.append(np.asarray(c))
    return np.concatenate(sources), np.concatenate(logits)


def sample_grid(generator, class_names: Sequence[str], per_class: int = 8, seed: int = 0,
                truncation: float = 1.0, title: Optional[str] = None) -> np.ndarray:
    """A labelled uint8 grid: one row per class, the same ``per_class`` noises in every row
    (so a column shows what the label alone changes)."""
    k = len(class_names)
    labels = np.repeat(np.arange(k, dtype=np.int32), per_class)
    seeds = seed + np.tile(np.arange(per_class, dtype=np.int64), k)
    return class_rows_grid(generate(generator, labels, seeds, truncation), class_names,
                           per_class, title=title)


class LearningProbe(keras.callbacks.Callback):
    """Measures the EMA generator (``measure``) every ``every`` iterations and at the end.

    ``records`` collects one dict per measurement with ``iteration`` and ``train_seconds``
    (wall time spent training so far, measurements excluded); ``grids`` the matching sample
    grids (uint8 arrays). ``on_record(record, grid)`` is called after each one.
    """

    def __init__(self, reference: RealReference, class_names, *, every: int,
                 samples_per_class: int, grid_per_class: int = 8, on_record=None):
        super().__init__()
        self.reference = reference
        self.class_names = list(class_names)
        self.every = int(every)
        self.samples_per_class = samples_per_class
        self.grid_per_class = grid_per_class
        self.on_record = on_record
        self.records: List[dict] = []
        self.grids: List[np.ndarray] = []
        self._train_seconds = 0.0
        self._since = None

    @property
    def iteration(self) -> int:
        return int(self.model.iterations_done.numpy())

    def on_train_begin(self, logs=None):
        self._since = time.time()
        if self.iteration == 0 and not self.records:
            self._record(logs)

    def on_train_batch_end(self, batch, logs=None):
        if self.iteration % self.every == 0:
            self._record(logs)

    def on_train_end(self, logs=None):
        if not self.records or self.records[-1]["iteration"] != self.iteration:
            self._record(logs)

    def _record(self, logs):
        self._train_seconds += time.time() - self._since
        started = time.time()
        gan = self.model
        record = {"iteration": self.iteration,
                  "train_seconds": round(self._train_seconds, 1)}
        record.update(measure(gan.ema_generator, gan.discriminator, self.reference,
                              samples_per_class=self.samples_per_class))
        for key in ("acc_real", "acc_fake", "ce_real", "d_real", "d_fake", "gp",
                    "s_ce_real", "s_ce_fake_g"):
            if logs and key in logs:
                record[f"train_{key}"] = float(np.asarray(logs[key]))
        record["measure_seconds"] = round(time.time() - started, 1)
        grid = sample_grid(gan.ema_generator, self.class_names, self.grid_per_class,
                           title=f"iteration {record['iteration']}")
        self.records.append(record)
        self.grids.append(grid)
        if self.on_record is not None:
            self.on_record(record, grid)
        self._since = time.time()
