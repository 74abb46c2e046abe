"""Atomic file output: write under a temporary name in the destination folder, then rename.

A crash (or ``kill -9``) at any moment leaves either the old file or the new one, never a
half-written one; ``os.replace`` is atomic within one file system.
"""
import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    For writers that want a file name rather than a handle (h5py, Keras ``save_weights``,
    PIL). ``suffix`` keeps an extension some writers insist on (``.weights.h5``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = "".join(_extensions(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """``open()`` that only publishes the file if the ``with`` block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_json(path, data):
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; on success rename it to ``path``.

    Used for SavedModel versions: TF Serving watches the parent folder and must never see a
    half-written version. Fails if ``path`` already exists (versions are never overwritten).
    """
    path = os.fspath(path).rstrip("/")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extensions(path):
    name = os.path.basename(path)
    parts = name.split(".")[1:]
    return ["." + p for p in parts[-2:]] if parts else []
