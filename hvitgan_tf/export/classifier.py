"""Export a benchmark classifier as a SavedModel with ``classify`` and ``features`` signatures.

Signatures (docs/method.md §7's ``classify``, plus ``features`` for the ``classifier:`` FID
extractor), batch dimension ``None``:

- ``classify`` (also ``serving_default``): ``images`` uint8 ``[N, H, W, 3]`` ->
  ``probabilities`` float32 ``[N, C]``, ``label`` int32 ``[N]``.
- ``features``: ``images`` uint8 ``[N, H, W, 3]`` -> ``features`` float32 ``[N, F]``.

Inside, images are mapped to ``[-1, 1]`` by ``hvitgan_tf.imaging.tensor_to_float``
(``x / 127.5 - 1``), the format the classifiers are trained on. Class names and a small
description travel in ``assets.extra/`` (the folder TF Serving leaves to the user), as for a GAN
export: ``class_names.txt`` and ``classifier.json`` (read back by
``hvitgan_tf.exported_model.read_classifier_metadata``). The folder appears atomically: a crash
leaves no half-written SavedModel.

The ``features`` signature reads the classifier's layer named ``features`` (``FEATURES_LAYER``,
the pooled penultimate representation), the name every ``hvitgan_tf.evaluation.classifiers``
model gives it. TensorFlow is imported on use: reading ``classifier.json`` needs none.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Sequence, Union

from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import CLASSIFIER_METADATA_FILE, EXTRA_DIR, write_class_names
from hvitgan_tf.fileio import atomic_directory

#: Name of the layer whose output is the penultimate (pooled) feature vector.
FEATURES_LAYER = "features"


def classifier_feature_model(model):
    """The sub-model from ``model``'s input to its ``features`` layer (shares the weights)."""
    import keras

    try:
        features = model.get_layer(FEATURES_LAYER).output
    except ValueError:
        raise UserError(f"model {model.name!r} has no layer named '{FEATURES_LAYER}'; build it "
                        "with build_classifier or pass feature_model explicitly") from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, features, name=f"{model.name}_features")


def export_classifier(model, path: Union[str, os.PathLike], image_size: Union[int, Sequence[int]],
                      class_names: Sequence[str], *, feature_model=None,
                      overwrite: bool = False) -> str:
    """Write ``model`` (``[-1, 1]`` images -> probabilities) as a SavedModel at ``path``.

    Args:
        model: a Keras classifier; its probabilities output must have ``len(class_names)``
            columns.
        image_size: side (or ``(height, width)``) of the uint8 images the signatures accept. If
            the model's input has a different static size, images are resized (bilinear) to it
            inside the graph.
        class_names: one name per output, written to ``assets.extra/class_names.txt``.
        feature_model: the penultimate-feature model; defaults to
            ``classifier_feature_model(model)`` (the layer named ``features``).
        overwrite: replace an existing ``path`` (otherwise that is an error).
    Returns the path written.
    """
    import keras
    import tensorflow as tf

    from hvitgan_tf.imaging import tensor_to_float

    path = os.fspath(path).rstrip("/")
    height, width = ((int(image_size),) * 2 if isinstance(image_size, int)
                     else tuple(int(s) for s in image_size))
    class_names = [str(name) for name in class_names]
    num_outputs = model.output_shape[-1]
    if num_outputs != len(class_names):
        raise UserError(f"the model has {num_outputs} outputs but {len(class_names)} class "
                        f"names were given: {class_names}")
    if feature_model is None:
        feature_model = classifier_feature_model(model)
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path} already exists; choose a new path or pass overwrite=True")

    model_size = tuple(model.input_shape[1:3])

    def model_input(images):
        x = tensor_to_float(images)
        if None not in model_size and model_size != (height, width):
            x = tf.image.resize(x, model_size, method="bilinear")
        return x

    def classify(images):
        probabilities = tf.cast(model(model_input(images), training=False), tf.float32)
        return {"probabilities": probabilities,
                "label": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}

    def features(images):
        return {"features": tf.cast(feature_model(model_input(images), training=False),
                                    tf.float32)}

    image_spec = tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")
    archive = keras.export.ExportArchive()
    archive.track(model)
    if feature_model is not model:  # an explicitly given one may hold weights of its own
        archive.track(feature_model)
    # The first endpoint is also published as serving_default.
    archive.add_endpoint("classify", classify, input_signature=[image_spec])
    archive.add_endpoint("features", features, input_signature=[image_spec])

    metadata = {
        "model": model.name,
        "image_size": [height, width],
        "input": "uint8 RGB [N, H, W, 3]; mapped to [-1, 1] as x / 127.5 - 1",
        "num_classes": len(class_names),
        "class_names": class_names,
        "feature_dim": int(feature_model.output_shape[-1]),
        "signatures": ["classify", "features"],
    }
    retired = None
    with atomic_directory(path) as tmp:
        archive.write_out(tmp, verbose=False)
        extra = os.path.join(tmp, EXTRA_DIR)
        os.makedirs(extra, exist_ok=True)
        write_class_names(extra, class_names)
        with open(os.path.join(extra, CLASSIFIER_METADATA_FILE), "w",
                  encoding="utf-8") as handle:
            json.dump(metadata, handle, indent=2)
        if os.path.exists(path):  # overwrite: move the old export aside just before the swap
            retired = f"{tmp}.old"
            os.rename(path, retired)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    return path

