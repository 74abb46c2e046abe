"""Finding an exported model and reading what travels with it, without TensorFlow.

Layout (TF Serving's, docs/method.md §7)::

    saved_models/<name>/<version>/saved_model.pb           # integer versions, highest is served
    saved_models/<name>/<version>/variables/...
    saved_models/<name>/<version>/assets.extra/hvitgan.json       # see export_metadata()
    saved_models/<name>/<version>/assets.extra/class_names.txt    # one name per line, label order

``assets.extra/`` is the folder TF Serving leaves alone, so these files do not affect serving.
The CLI (``sample``) validates ``--model`` with these functions before it loads TensorFlow.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List

from hvitgan_tf.errors import UserError

FORMAT = "hvitgan-tf/savedmodel"
FORMAT_VERSION = 1
EXTRA_DIR = "assets.extra"
METADATA_FILE = "hvitgan.json"
CLASS_NAMES_FILE = "class_names.txt"
SIGNATURES = ("generate", "classify", "features", "metadata")

_VERSION_NAME = re.compile(r"^[0-9]+$")
# Names TF Serving accepts in a URL path segment without escaping, and safe as a folder name.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_model_name(name: str) -> str:
    """``name`` if it is usable as ``saved_models/<name>/`` and in TF Serving's URLs."""
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise UserError(f"model name {name!r} must start with a letter or digit and use only "
                        "letters, digits, '.', '_' and '-' (it becomes a folder and a URL part)")
    return name


def is_saved_model(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def list_versions(base: str) -> Dict[int, str]:
    """``{version: folder}`` of the complete SavedModel versions under a model base folder.

    Only integer-named sub-folders holding a ``saved_model.pb`` count (what TF Serving loads);
    the temporary ``.tmp-*`` folders of an export in progress never do.
    """
    if not os.path.isdir(base):
        return {}
    versions = {}
    for entry in os.listdir(base):
        folder = os.path.join(base, entry)
        if _VERSION_NAME.match(entry) and is_saved_model(folder):
            versions[int(entry)] = folder
    return versions


def resolve_model_dir(path) -> str:
    """The absolute version folder for ``path``: a version folder itself, or a model base folder
    (``saved_models/hvitgan``), in which case its highest integer version (TF Serving's choice).
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.exists(path):
        raise UserError(f"model {path} does not exist (expected saved_models/<name> or "
                        "saved_models/<name>/<version>, as written by 'hvitgan-tf export')")
    if not os.path.isdir(path):
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


def read_export_metadata(path) -> dict:
    """The ``hvitgan.json`` of an export, plus ``model_dir`` (the absolute version folder).

    ``path`` is a version folder or a model base folder (then its highest version). Raises
    ``UserError`` for a folder that is not an hvitgan-tf SavedModel or has no versions.
    """
    model_dir = resolve_model_dir(path)
    file = os.path.join(model_dir, EXTRA_DIR, METADATA_FILE)
    try:
        with open(file, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except FileNotFoundError:
        raise UserError(f"{model_dir} is a SavedModel but not an hvitgan-tf export (no "
                        f"{EXTRA_DIR}/{METADATA_FILE}); export a run with "
                        "'hvitgan-tf export RUN_DIR'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{file} is damaged: {error}") from None
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


def describe(metadata: dict) -> str:
    """``hvitgan v3 (tiny, 16 px, 2 classes, exported 2025-01-01T12:00:00Z)``, for messages."""
    preset = (metadata.get("model_config") or {}).get("preset", "?")
    return (f"{metadata['name']} v{metadata['version']} ({preset}, {metadata['image_size']} px, "
            f"{metadata['num_classes']} classes, exported {metadata.get('exported_at', '?')})")


def class_names_text(class_names: List[str]) -> str:
    return "".join(f"{name}\n" for name in class_names)


def load_saved_model(model_dir):
    """``tf.saved_model.load(model_dir)``, with a damaged or foreign SavedModel (a truncated
    ``saved_model.pb``, missing variables) named as a ``UserError`` instead of a protobuf or
    TensorFlow traceback. The one place the package loads a SavedModel; TensorFlow is
    imported here, on first use."""
    import tensorflow as tf

    model_dir = os.fspath(model_dir)
    try:
        return tf.saved_model.load(model_dir)
    except UserError:
        raise
    except Exception as error:  # DecodeError, OSError, NotFoundError, ValueError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"cannot load the SavedModel in {model_dir}: it is damaged or "
                        f"incomplete ({type(error).__name__}{': ' + first[:200] if first else ''}"
                        f"); export it again") from None

