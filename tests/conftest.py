"""Shared test setup: quiet TensorFlow, CPU only, and small helpers used across test folders."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Each xdist worker gets its own TensorFlow; two intra-op threads is all a CI core pair gives.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")


import fcntl  # noqa: E402
import contextlib  # noqa: E402
import errno  # noqa: E402

import pytest  # noqa: E402


@contextlib.contextmanager
def _shared_build(root, name):
    """Build something once per test session across pytest-xdist workers (file lock)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root / name
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _session_root(tmp_path_factory):
    # The parent of each worker's base temp is shared by all xdist workers of one session.
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A finished 4-iteration run of the tiny preset on 64 demo patches (built once)."""
    with _shared_build(_session_root(tmp_path_factory), "tiny-run") as run_dir:
        if not (run_dir / "checkpoints" / "last.json").exists():
            from hvitgan_tf.data import open_source
            from hvitgan_tf.models.config import preset
            from hvitgan_tf.training.config import TrainConfig
            from hvitgan_tf.training.runner import train

            source = open_source("demo", limit=64, seed=0)
            # The paper's losses and learning rates: the sampling and export tests rely on
            # how this barely trained model behaves (a class head that prefers one class).
            config = TrainConfig(batch_size=4, n_critic=2, total_steps=4, seed=0,
                                 diffaug="color", checkpoint_every=0, samples_per_class=2,
                                 lr_g=1e-4, class_gradient_share=0.0, d_class_on_fakes=True)
            # run.json records the data selection the source was opened with.
            train(str(run_dir), source, preset("tiny", source.num_classes), config, verbose=0)
        return str(run_dir)


@pytest.fixture(scope="session")
def tiny_saved_model(tiny_run_dir, tmp_path_factory):
    """``(base, version_dir)``: the tiny run exported as saved_models/hvitgan/1 (built once)."""
    with _shared_build(_session_root(tmp_path_factory), "saved_models") as base:
        version_dir = base / "hvitgan" / "1"
        if not version_dir.exists():
            from hvitgan_tf.export import export_run

            export_run(tiny_run_dir, export_dir=str(base), name="hvitgan", version=1)
        return str(base / "hvitgan"), str(version_dir)


class _FillingFile:
    """A file on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[:len(data) // 2])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


@pytest.fixture
def disk_full_after(monkeypatch):
    """``disk_full_after(n)``: the sample writer's PNGs go to a disk with room for ``n`` more;
    the next one is cut short by ENOSPC, half written under its temporary name (a stand-in for
    a full file system, which a test cannot mount here). Returns the temporary paths opened."""
    from hvitgan_tf.sampling import writers

    opened = []

    def start(files):
        def filling_open(path, mode="r", *args, **kwargs):
            handle = open(path, mode, *args, **kwargs)
            if "w" not in mode or not os.fspath(path).endswith(".png"):
                return handle
            opened.append(os.fspath(path))
            return _FillingFile(handle) if len(opened) > files else handle

        monkeypatch.setattr(writers, "open", filling_open, raising=False)
        return opened

    return start
