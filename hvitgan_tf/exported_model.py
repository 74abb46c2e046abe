"""Exported models, read back: finding a version, what travels with it, and its signatures.

The one reader of the SavedModels that ``hvitgan_tf.export`` writes, an HViTGAN's
(docs/method.md §7) and a benchmark classifier's: sampling, evaluation, the ``classifier:``
feature extractor and the Beam pipeline all read exports through this module. It imports
nothing of training or metrics, so every layer can use it; TensorFlow is imported on first use,
so the CLI checks ``--model`` before TensorFlow starts.

Layout (TF Serving's)::

    saved_models/<name>/<version>/saved_model.pb           # integer versions, highest is served
    saved_models/<name>/<version>/variables/...
    saved_models/<name>/<version>/assets.extra/hvitgan.json       # a GAN: see export_run()
    saved_models/<name>/<version>/assets.extra/classifier.json    # a classifier instead
    saved_models/<name>/<version>/assets.extra/class_names.txt    # one name per line, label order

``assets.extra/`` is the folder TF Serving leaves alone, so these files do not affect serving.
Paths with a scheme (``gs://``, ``ram://``) are read through ``tf.io.gfile``, local ones through
``os``; both answer the same way.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict

import numpy as np

from hvitgan_tf.errors import UserError

FORMAT = "hvitgan-tf/savedmodel"
FORMAT_VERSION = 1
EXTRA_DIR = "assets.extra"
METADATA_FILE = "hvitgan.json"
CLASSIFIER_METADATA_FILE = "classifier.json"
CLASS_NAMES_FILE = "class_names.txt"
SIGNATURES = ("generate", "classify", "features", "metadata")

_VERSION_NAME = re.compile(r"^[0-9]+$")


# -- files, local or remote ------------------------------------------------------------------

def _remote(path: str) -> bool:
    return "://" in path


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if _remote(folder) else os.path.join(folder, name)


def _exists(path: str) -> bool:
    if _remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.exists(path)


def _isdir(path: str) -> bool:
    if _remote(path):
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def _listdir(path: str):
    if _remote(path):
        import tensorflow as tf

        return [entry.rstrip("/") for entry in tf.io.gfile.listdir(path)]
    return os.listdir(path)


def _read_text(path: str) -> str:
    if _remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path) as handle:
            return handle.read()
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# -- finding a version -----------------------------------------------------------------------

def is_saved_model(path: str) -> bool:
    return _exists(_join(path, "saved_model.pb"))


def list_versions(base: str) -> Dict[int, str]:
    """``{version: folder}`` of the complete SavedModel versions under a model base folder.

    Only integer-named sub-folders holding a ``saved_model.pb`` count (what TF Serving loads);
    the temporary ``.tmp-*`` folders of an export in progress never do.
    """
    base = os.fspath(base)
    if not _isdir(base):
        return {}
    versions = {}
    for entry in _listdir(base):
        folder = _join(base, entry)
        if _VERSION_NAME.match(entry) and is_saved_model(folder):
            versions[int(entry)] = folder
    return versions


def resolve_model_dir(path) -> str:
    """The version folder for ``path``: a version folder itself, or a model base folder
    (``saved_models/hvitgan``), in which case its highest integer version (TF Serving's choice).
    Local paths come back absolute.
    """
    path = os.fspath(path)
    path = path.rstrip("/") if _remote(path) else os.path.abspath(os.path.expanduser(path))
    if not _exists(path):
        raise UserError(f"model {path} does not exist (expected saved_models/<name> or "
                        "saved_models/<name>/<version>, as written by 'hvitgan-tf export')")
    if not _isdir(path):
        raise UserError(f"model {path} is a file; give the SavedModel folder "
                        "(saved_models/<name> or saved_models/<name>/<version>)")
    if is_saved_model(path):
        return path
    versions = list_versions(path)
    if not versions:
        raise UserError(f"{path} is not a SavedModel and holds no versions (no "
                        f"{path}/<integer>/saved_model.pb); export one with "
                        "'hvitgan-tf export RUN_DIR'")
    return versions[max(versions)]


# -- what travels with an export -------------------------------------------------------------

def _read_json(file: str):
    try:
        return json.loads(_read_text(file))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{file} is damaged: {error}") from None


def read_export_metadata(path) -> dict:
    """The ``hvitgan.json`` of a GAN export, plus ``model_dir`` (the version folder).

    ``path`` is a version folder or a model base folder (then its highest version). Raises
    ``UserError`` for a folder that is not an hvitgan-tf SavedModel or has no versions.
    """
    model_dir = resolve_model_dir(path)
    file = _join(model_dir, f"{EXTRA_DIR}/{METADATA_FILE}")
    if not _exists(file):
        raise UserError(f"{model_dir} is a SavedModel but not an hvitgan-tf export (no "
                        f"{EXTRA_DIR}/{METADATA_FILE}); export a run with "
                        "'hvitgan-tf export RUN_DIR'")
    metadata = _read_json(file)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise UserError(f"{file} does not describe an hvitgan-tf SavedModel (format "
                        f"{metadata.get('format') if isinstance(metadata, dict) else None!r}, "
                        f"expected {FORMAT!r})")
    if int(metadata.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(f"{model_dir} was exported by a newer hvitgan-tf (format version "
                        f"{metadata['format_version']} > {FORMAT_VERSION}); upgrade hvitgan-tf")
    missing = [key for key in ("name", "version", "class_names", "num_classes", "image_size",
                               "latent_dim") if key not in metadata]
    if missing:
        raise UserError(f"{file} lacks {', '.join(missing)}; re-export the model")
    metadata["model_dir"] = model_dir
    return metadata


def read_classifier_metadata(path) -> dict:
    """The ``classifier.json`` written by ``export_classifier`` (class names, image size...)."""
    path = os.fspath(path)
    file = _join(path, f"{EXTRA_DIR}/{CLASSIFIER_METADATA_FILE}")
    if not _exists(file):
        raise UserError(f"{path} has no {EXTRA_DIR}/{CLASSIFIER_METADATA_FILE}; was it written "
                        "by export_classifier?")
    return _read_json(file)


def read_metadata(model_dir) -> dict:
    """What travels with any export, GAN or classifier: ``class_names``, ``image_size`` (an
    int), ``num_classes``, and for a GAN ``model_config`` and ``latent_dim``; ``{}`` for a
    SavedModel that is neither (a model's metadata is then unknown, not wrong)."""
    model_dir = os.fspath(model_dir)
    if _exists(_join(model_dir, f"{EXTRA_DIR}/{CLASSIFIER_METADATA_FILE}")):
        metadata = dict(read_classifier_metadata(model_dir))
    else:
        try:
            metadata = dict(read_export_metadata(model_dir))
        except UserError:
            return {}
    size = metadata.get("image_size")
    if isinstance(size, (list, tuple)):  # a classifier's [height, width]
        metadata["image_size"] = int(size[0])
    return metadata


def write_class_names(folder: str, class_names) -> None:
    """``folder/class_names.txt``, one name per line in label order: the exporters' copy of the
    class names for whoever serves the model without reading JSON."""
    with open(os.path.join(folder, CLASS_NAMES_FILE), "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in class_names))


def describe(metadata: dict) -> str:
    """``hvitgan v3 (tiny, 16 px, 2 classes, exported 2025-01-01T12:00:00Z)``, for messages."""
    preset = (metadata.get("model_config") or {}).get("preset", "?")
    return (f"{metadata['name']} v{metadata['version']} ({preset}, {metadata['image_size']} px, "
            f"{metadata['num_classes']} classes, exported {metadata.get('exported_at', '?')})")


# -- loading and signatures ------------------------------------------------------------------

def load_saved_model(model_dir):
    """``tf.saved_model.load(model_dir)``, with a damaged or foreign SavedModel (a truncated
    ``saved_model.pb``, missing variables) named as a ``UserError`` instead of a protobuf or
    TensorFlow traceback. The one place the package loads a SavedModel."""
    import tensorflow as tf

    model_dir = os.fspath(model_dir)
    try:
        return tf.saved_model.load(model_dir)
    except UserError:
        raise
    except Exception as error:  # DecodeError, OSError, NotFoundError, ValueError, ...
        found = _damaged_part(model_dir)
        if found is not None:
            file, why = found
            raise UserError(f"cannot load the SavedModel in {model_dir}: {file} is damaged or "
                            f"missing ({why}); export it again") from None
        raise UserError(f"cannot load the SavedModel in {model_dir}: it is damaged or "
                        f"incomplete ({_summary(error)}); export it again") from None


def _summary(error) -> str:
    """``Type: first line of the message`` (TensorFlow's messages run over many lines)."""
    text = str(error).strip()
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"


def _damaged_part(model_dir: str):
    """``(file, why)`` for the first file of a SavedModel that does not read back: the graph
    (``saved_model.pb``), the variables' index, or a variables data shard; ``None`` when each
    reads (the load failed for another reason).

    ``tf.saved_model.load`` reports a truncated index as "not an sstable" and a truncated data
    shard as "Read less bytes than requested", without a file name; reading the parts one by
    one finds which file to name. The index says which shards there are and how long each must
    be (``tensor_bundle``), so a missing or cut-short shard is named without reading it; then
    every tensor is read, so the shards' checksums are checked too. Only run after a load has
    failed.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    graph = _join(model_dir, "saved_model.pb")
    try:
        with tf.io.gfile.GFile(graph, "rb") as handle:
            saved_model_pb2.SavedModel().ParseFromString(handle.read())
    except Exception as error:  # DecodeError, NotFoundError...
        return graph, _summary(error)
    prefix = _join(model_dir, "variables/variables")
    index = f"{prefix}.index"
    shards = sorted(tf.io.gfile.glob(f"{prefix}.data-*"))
    if not _exists(index):
        return (index, "missing") if shards else None  # no variables at all is allowed
    bundle = _bundle_index(index)
    if bundle is not None:
        found = _short_shard(bundle, prefix)
        if found is not None:
            return found
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as error:
        # The index is read first; a shard it lists that is absent fails here too.
        return (index, _summary(error)) if shards else (_shard_names(shards, prefix), "missing")
    for key in reader.get_variable_to_dtype_map():
        try:
            reader.get_tensor(key)
        except Exception as error:  # short reads, checksum mismatches
            # Stop here: TensorFlow's reader aborts the process if used after a failed read.
            return _shards_holding(bundle, key, error, prefix, shards), _summary(error)
    return None


def _bundle_index(index: str):
    """The variables index as ``tensor_bundle`` reads it, or ``None`` (a damaged or unusual
    one: TensorFlow's own reader then decides whether it is the damaged file)."""
    from hvitgan_tf import tensor_bundle

    if not os.path.isfile(index):  # a remote SavedModel (gs://...): not read here
        return None
    try:
        return tensor_bundle.read_index(index)
    except Exception:  # OSError, ValueError, a protobuf DecodeError
        return None


def _short_shard(bundle, prefix: str):
    """``(file, why)`` for the first data shard the index lists that is missing or shorter than
    the tensors it must hold; ``None`` when every one is long enough."""
    for shard, needed in sorted(bundle.bytes_needed().items()):
        path = bundle.shard_path(prefix, shard)
        try:
            size = os.path.getsize(path)
        except OSError:
            return path, "missing"
        if size < needed:
            return path, f"cut short: {size} bytes, its tensors need {needed}"
    return None


def _shards_holding(bundle, key: str, error, prefix: str, shards) -> str:
    """The data shard(s) of the tensor ``key`` that failed to read. A tensor saved in slices
    over several shards is narrowed down by the shard number TensorFlow's checksum message
    gives ("... shard 1 (4000 bytes): Checksum does not match")."""
    if bundle is None:
        return _shard_names(shards, prefix)
    holding = bundle.shards_of(key)
    named = re.search(r"\bshard (\d+)\b", str(error))
    if named and int(named.group(1)) in holding:
        holding = [int(named.group(1))]
    return " or ".join(bundle.shard_path(prefix, shard) for shard in holding) or \
        _shard_names(shards, prefix)


def _shard_names(shards, prefix: str) -> str:
    """The data shard files on disk by name (``PREFIX.data-*`` when there are none)."""
    return " or ".join(shards) if shards else f"{prefix}.data-00000-of-00001"


def signature(loaded, name: str, model_dir: str, hint: str = ""):
    """The signature ``name`` of a loaded SavedModel, or a ``UserError`` naming those it has
    (``hint`` is added to that message)."""
    signatures = dict(loaded.signatures)
    if name not in signatures:
        raise UserError(f"the SavedModel at {model_dir} has no '{name}' signature (it has: "
                        f"{', '.join(sorted(signatures)) or 'none'}){hint}")
    return signatures[name]


def image_input(function, name: str, model_dir: str):
    """``(input name, dtype, static (H, W) or None)`` of a signature with one image input
    ``[N, H, W, 3]``."""
    _, inputs = function.structured_input_signature
    images = [(key, spec) for key, spec in inputs.items()
              if spec.shape.rank == 4 and spec.shape[-1] == 3]
    if len(inputs) != 1 or len(images) != 1:
        raise UserError(f"the '{name}' signature of {model_dir} must take one image input "
                        f"[N, H, W, 3]; it takes {sorted(inputs)}")
    key, spec = images[0]
    height, width = spec.shape[1], spec.shape[2]
    return key, spec.dtype, ((int(height), int(width)) if height and width else None)


class ExportedModel:
    """An HViTGAN export, loaded: ``ExportedModel(path)`` with ``path`` a version folder or a
    model base folder (highest version). ``.metadata`` is its ``hvitgan.json``; the methods
    take and return NumPy.

    What is known of the networks is the ``generate`` / ``classify`` / ``features`` signatures
    and ``hvitgan.json``, never the Python model classes: that is also all TF Serving and a Beam
    ``ModelHandler`` see, so the three agree by construction.
    """

    def __init__(self, path, metadata=None):
        self.metadata = metadata or read_export_metadata(path)
        self.model_dir = self.metadata["model_dir"]
        self._loaded = load_saved_model(self.model_dir)  # owns the variables: keep it
        self._signatures = dict(self._loaded.signatures)
        missing = [name for name in ("generate", "classify") if name not in self._signatures]
        if missing:
            raise UserError(f"{self.model_dir} has no {', '.join(missing)} signature(s); "
                            "re-export it with 'hvitgan-tf export'")

    @property
    def class_names(self):
        return list(self.metadata["class_names"])

    @property
    def image_size(self) -> int:
        return int(self.metadata["image_size"])

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> int:
        return int(self.metadata["version"])

    def generate(self, labels, seeds, truncation=1.0) -> dict:
        """``images`` uint8 ``[N, S, S, 3]``, ``probabilities`` ``[N, C]``, ``confidence``
        ``[N]`` for int labels ``[N]``, int64 seeds ``[N]`` and ψ (scalar or ``[N]``).

        The export gives every sample the same bytes whatever the batch it is in
        (``hvitgan_tf.export.savedmodel``), so callers may slice the work as they like."""
        import tensorflow as tf

        labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        psi = np.broadcast_to(np.asarray(truncation, dtype=np.float32), labels.shape)
        outputs = self._signatures["generate"](
            label=tf.constant(labels), seed=tf.constant(seeds),
            truncation=tf.constant(np.ascontiguousarray(psi)))
        return {key: value.numpy() for key, value in outputs.items()}

    def classify(self, images) -> dict:
        """``probabilities`` ``[N, C]`` and ``label`` ``[N]`` for uint8 images ``[N, H, W, 3]``."""
        import tensorflow as tf

        outputs = self._signatures["classify"](images=tf.constant(np.asarray(images, np.uint8)))
        return {key: value.numpy() for key, value in outputs.items()}

    def features(self, images) -> np.ndarray:
        import tensorflow as tf

        outputs = self._signatures["features"](images=tf.constant(np.asarray(images, np.uint8)))
        return outputs["features"].numpy()
