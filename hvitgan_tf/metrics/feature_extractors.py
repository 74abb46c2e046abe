"""Feature extractors for FID/KID, behind a small registry: ``get_feature_extractor(name)``.

Names (docs/method.md §9):

- ``inception`` (or ``inception:PATH``): InceptionV3's 2048-d average-pool features, the
  standard FID network. Needs its ImageNet weights file, from ``inception_weights=PATH`` (or the
  ``:PATH`` suffix) or from Keras's cache; never downloaded (see ``imagenet_weights``).
- ``classifier:PATH``: the ``features`` signature of a SavedModel, e.g. a benchmark classifier
  written by ``hvitgan_tf.export.classifier.export_classifier`` or an exported GAN (its
  discriminator's class-token features), read through ``hvitgan_tf.exported_model``. Works
  offline and gives a domain-specific FID.

Every extractor is called on a batch of images and returns float32 ``[N, F]`` numpy features.
Images come in either format the project uses:

- float ``[N, H, W, 3]`` in ``[-1, 1]`` (the data pipeline's format), or
- uint8 ``[N, H, W, 3]`` in ``[0, 255]`` (PNG files, SavedModel signatures).

The conversion between the two is ``hvitgan_tf.imaging``'s (round to nearest), the same rule the
SavedModels use. A float array outside ``[-1, 1]`` is rejected rather than silently rescaled:
it is almost always 0-255 data in the wrong dtype, which would give meaningless features.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Iterable, Iterator, Optional

import numpy as np

from hvitgan_tf import imaging
from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import (image_input, load_saved_model, resolve_model_dir,
                                       signature)
from hvitgan_tf.metrics import imagenet_weights

# Float images may overshoot [-1, 1] a little (bicubic resizing rings); such values are
# clipped. Anything beyond this is taken for data in another range and rejected.
_RANGE_TOLERANCE = 0.05


def as_float_images(images) -> np.ndarray:
    """Images (uint8 0-255 or float in [-1, 1], ``[N, H, W, 3]``) as float32 in ``[-1, 1]``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"expected a batch of RGB images [N, H, W, 3], got shape {images.shape}")
    if images.dtype == np.uint8:
        return imaging.to_float(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise UserError(f"images must be uint8 (0-255) or float in [-1, 1], got dtype "
                        f"{images.dtype}")
    if images.size:
        low, high = float(images.min()), float(images.max())
        if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise UserError(
                f"float images must be scaled to [-1, 1] (the dataset format), got values in "
                f"[{low:.3g}, {high:.3g}]; pass 0-255 images as uint8"
            )
    return np.clip(images.astype(np.float32), -1.0, 1.0)


class FeatureExtractor:
    """Maps image batches to feature vectors. Subclasses set the attributes and ``_extract``.

    Attributes:
        name: registry name it was built from, e.g. ``"inception"``.
        feature_dim: ``F``, the width of the feature vectors.
        cache_id: identifies the extractor *and its weights* for the real-statistics cache.
        batch_size: largest batch sent through the network at once.
    """

    name: str = ""
    feature_dim: int = 0
    cache_id: str = ""
    batch_size: int = 32

    def __call__(self, images) -> np.ndarray:
        """float32 ``[N, feature_dim]`` features of uint8 or ``[-1, 1]`` float images."""
        images = as_float_images(images)
        if len(images) == 0:
            return np.zeros((0, self.feature_dim), np.float32)
        parts = [self._extract(images[i:i + self.batch_size])
                 for i in range(0, len(images), self.batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _extract(self, images: np.ndarray) -> np.ndarray:
        """Features of float32 ``[-1, 1]`` images (at most ``batch_size`` of them)."""
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.cache_id} ({self.feature_dim}-d)>"


class InceptionFeatureExtractor(FeatureExtractor):
    """InceptionV3 ``pool_3`` features (2048-d), the network FID is defined with.

    Images are resized bilinearly to 299x299. Keras's ``inception_v3.preprocess_input`` maps
    0-255 to ``[-1, 1]``; our images already are in ``[-1, 1]``, so they go in unchanged.
    Absolute FID values depend on such details (resize filter, JPEG, weights), so compare FIDs
    computed by this tool with each other, not with numbers from other code bases.
    """

    input_size = 299

    def __init__(self, inception_weights: Optional[str] = None, batch_size: int = 32):
        import keras
        import tensorflow as tf

        self.weights_path = imagenet_weights.resolve_weights(imagenet_weights.INCEPTION_V3,
                                                             inception_weights)
        try:
            self._model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights=self.weights_path,
                input_shape=(self.input_size, self.input_size, 3),
            )
        except (ValueError, OSError) as error:
            raise UserError(f"could not load InceptionV3 weights from {self.weights_path}: "
                            f"{error}") from None
        self.name = "inception"
        self.feature_dim = int(self._model.output_shape[-1])
        self.cache_id = (f"inception_v3:{imagenet_weights.file_fingerprint(self.weights_path)}")
        self.batch_size = int(batch_size)
        self._forward = tf.function(
            self._forward_graph,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )

    def _forward_graph(self, images):
        import tensorflow as tf

        resized = tf.image.resize(images, (self.input_size, self.input_size), method="bilinear")
        return self._model(resized, training=False)

    def _extract(self, images):
        return self._forward(images).numpy()


class ClassifierFeatureExtractor(FeatureExtractor):
    """Features from the ``features`` signature of a SavedModel (docs/method.md §9's offline FID).

    The signature takes one image input (uint8 ``[N, H, W, 3]`` expected, named ``images``; a
    float32 input is fed ``[-1, 1]`` images) and returns ``features`` float32 ``[N, F]``. When the
    input has a static size, images are resized (bilinear, in float) to it first.
    """

    SIGNATURE = "features"

    def __init__(self, path: str, batch_size: int = 64):
        import tensorflow as tf

        try:
            # A model name folder (saved_models/hvitgan) means its newest version, as --model.
            path = resolve_model_dir(path)
        except UserError:
            raise UserError(f"{os.path.abspath(path)} is not a SavedModel directory (no "
                            "saved_model.pb) nor a folder of versions; classifier:PATH needs "
                            "an exported classifier or GAN") from None
        self._loaded = load_saved_model(path)  # keep a reference: it owns the variables
        self._signature = signature(
            self._loaded, self.SIGNATURE, path,
            hint=". Export classifiers with export_classifier(), which adds it; or use the "
                 "inception extractor")
        self._input_name, self._input_dtype, self.input_size = image_input(
            self._signature, self.SIGNATURE, path)
        if self._input_dtype not in (tf.uint8, tf.float32):
            raise UserError(f"the '{self.SIGNATURE}' signature of {path} must take uint8 "
                            f"images [N, H, W, 3], its input is {self._input_dtype.name}")
        outputs = self._signature.structured_outputs
        self._output_name = self.SIGNATURE if self.SIGNATURE in outputs else None
        if self._output_name is None:
            if len(outputs) != 1:
                raise UserError(f"the '{self.SIGNATURE}' signature of {path} must return "
                                f"'{self.SIGNATURE}', it returns {sorted(outputs)}")
            self._output_name = next(iter(outputs))
        out_shape = outputs[self._output_name].shape
        self.feature_dim = int(out_shape[-1]) if out_shape[-1] is not None else \
            self._probe_feature_dim()
        self.path = path
        self.name = f"classifier:{path}"
        self.cache_id = f"classifier:{path}:{saved_model_fingerprint(path)}"
        self.batch_size = int(batch_size)

    def _probe_feature_dim(self) -> int:
        side = self.input_size or (32, 32)
        return int(self._extract(np.zeros((1, *side, 3), np.float32)).shape[-1])

    def _extract(self, images):
        import tensorflow as tf

        x = tf.convert_to_tensor(images, tf.float32)
        if self.input_size is not None and tuple(images.shape[1:3]) != self.input_size:
            x = tf.image.resize(x, self.input_size, method="bilinear")
        if self._input_dtype == tf.uint8:
            x = imaging.tensor_to_uint8(x)  # a uint8 input survives exactly
        outputs = self._signature(**{self._input_name: x})
        return outputs[self._output_name].numpy()


def saved_model_fingerprint(path: str) -> str:
    """A short id of a SavedModel's graph and variables (changes when it is re-exported)."""
    import tensorflow as tf

    try:
        fingerprint = tf.saved_model.experimental.read_fingerprint(path)
        return f"{fingerprint.saved_model_checksum:x}-{fingerprint.checkpoint_hash:x}"
    except (ValueError, OSError, tf.errors.OpError):
        # Older exports have no fingerprint.pb: hash the graph and the variables' index.
        parts = [os.path.join(path, "saved_model.pb"),
                 os.path.join(path, "variables", "variables.index")]
        return "-".join(imagenet_weights.file_fingerprint(p, 12) for p in parts
                        if os.path.isfile(p))


# -- registry --------------------------------------------------------------------------------

#: kind -> factory(argument, **kwargs); ``argument`` is the text after ``kind:`` (or None).
_FACTORIES: Dict[str, Callable[..., FeatureExtractor]] = {}
_USAGE: Dict[str, str] = {}


def register_feature_extractor(kind: str, usage: str):
    """Decorator adding ``factory(argument, **kwargs) -> FeatureExtractor`` under ``kind``."""
    def decorate(factory):
        _FACTORIES[kind] = factory
        _USAGE[kind] = usage
        return factory
    return decorate


def available_feature_extractors() -> Dict[str, str]:
    """``{kind: usage}`` for help texts."""
    return dict(_USAGE)


def get_feature_extractor(name: str, **kwargs) -> FeatureExtractor:
    """Build the extractor ``name`` (``kind`` or ``kind:argument``).

    Keyword arguments whose value is None are dropped, so a CLI can pass every option it has
    (``inception_weights=None``) whatever the extractor.
    """
    kind, _, argument = str(name).partition(":")
    if kind not in _FACTORIES:
        choices = "; ".join(f"{k} ({u})" for k, u in sorted(_USAGE.items()))
        raise UserError(f"unknown feature extractor {name!r}; choose one of: {choices}")
    return _FACTORIES[kind](argument or None,
                            **{k: v for k, v in kwargs.items() if v is not None})


@register_feature_extractor("inception", "InceptionV3 pool features, its ImageNet weights "
                                         "from Keras's cache or inception:WEIGHTS.h5")
def _inception(argument, inception_weights=None, batch_size=32):
    if argument and inception_weights and argument != inception_weights:
        raise UserError(f"two InceptionV3 weights files given: {argument} and "
                        f"{inception_weights}")
    return InceptionFeatureExtractor(inception_weights=argument or inception_weights,
                                     batch_size=batch_size)


@register_feature_extractor("classifier", "the 'features' signature of an exported "
                                          "classifier or GAN, works offline; "
                                          "classifier:SAVED_MODEL")
def _classifier(argument, batch_size=64):
    if not argument:
        raise UserError("the classifier extractor needs a SavedModel path: classifier:PATH")
    return ClassifierFeatureExtractor(argument, batch_size=batch_size)


# -- streaming over data ---------------------------------------------------------------------

def _images_of(element):
    """The images in one element of a data stream: a batch, ``(images, labels)`` or a dict."""
    if isinstance(element, dict):
        for key in ("image", "images"):
            if key in element:
                return element[key]
        raise UserError(f"a data element is a dict without 'image'/'images' "
                        f"(keys: {sorted(element)})")
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


def iter_image_batches(source, batch_size: int = 64) -> Iterator[np.ndarray]:
    """Batches of images from an array ``[N, H, W, 3]``, or from an iterable (e.g. a batched
    ``tf.data.Dataset``) of batches, ``(images, labels, ...)`` tuples or ``{"image": ...}``
    dicts."""
    if hasattr(source, "shape") and len(getattr(source, "shape", ())) == 4:
        array = np.asarray(source)
        for start in range(0, len(array), batch_size):
            yield array[start:start + batch_size]
        return
    for element in source:
        images = np.asarray(_images_of(element))
        if images.ndim == 3:  # an unbatched dataset: one image per element
            images = images[None]
        yield images


def iter_features(extractor: FeatureExtractor, source, batch_size: int = 64
                  ) -> Iterable[np.ndarray]:
    """``extractor`` features of every batch in ``source`` (see ``iter_image_batches``)."""
    for images in iter_image_batches(source, batch_size):
        yield extractor(images)
