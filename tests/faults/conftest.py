"""Fixtures of the fault-injection tests: a private lock folder, and intact SavedModels loaded
once per module."""
import os
import sys

import pytest

# ``import pipelines`` must find the repository's package, not tests/pipelines (see the
# conftest there).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    """Folder locks of this test only (subprocesses started with ``os.environ`` share them)."""
    locks = tmp_path / "locks"
    monkeypatch.setenv("HVITGAN_TF_LOCK_DIR", str(locks))
    return locks


def _fingerprint(export_dir):
    """What identifies an unchanged SavedModel folder: its real path and every file's size and
    modification time (``None`` if it cannot be listed)."""
    folder = os.path.realpath(os.fspath(export_dir))
    try:
        files = []
        for root, _, names in os.walk(folder):
            for name in names:
                info = os.stat(os.path.join(root, name))
                files.append((os.path.relpath(os.path.join(root, name), folder), info.st_size,
                              info.st_mtime_ns))
    except OSError:
        return None
    return folder, tuple(sorted(files))


@pytest.fixture(scope="module")
def reuse_loaded_models():
    """``tf.saved_model.load`` loads an unchanged folder once per module: each in-process
    ``sample`` otherwise spends a second or more loading the intact tiny model again. A damaged
    copy has its own path and is loaded (and fails) for real; failures are not remembered."""
    import tensorflow as tf

    real_load = tf.saved_model.load
    loaded = {}

    def load(export_dir, *args, **kwargs):
        key = _fingerprint(export_dir)
        if args or kwargs or key is None:
            return real_load(export_dir, *args, **kwargs)
        if key not in loaded:
            loaded[key] = real_load(export_dir)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.saved_model, "load", load)
        yield
