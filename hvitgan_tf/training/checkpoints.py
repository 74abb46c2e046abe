"""Checkpoints of the full training state, crash-safe.

Layout under ``RUN_DIR/checkpoints/``::

    iter-00000120.weights.h5   # HViTGAN.save_weights: G, D, EMA G, both optimisers, s_i
    last.json                  # {"weights": "iter-00000120.weights.h5", "iteration": 120, ...}
    best.json                  # the checkpoint with the lowest validation FID (if computed)

Each weights file is written under a temporary name and renamed; ``last.json`` is replaced only
after its weights file exists. A ``kill -9`` at any instant therefore leaves a ``last.json``
that points at a complete file. Old iterations are pruned, but never the one ``best.json`` names.
``last.json`` is only a pointer: when it, or the file it names, is damaged anyway (a disk that
filled, a copy cut short), ``--resume`` continues from the newest intact ``iter-N`` file
(:func:`resume_point`).
"""
import contextlib
import glob
import os
import re
import time

import numpy as np

from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import DamagedJSONError, atomic_path, check_room, read_json, write_json

FOLDER = "checkpoints"
KEEP = 2  # recent checkpoints kept besides the best one
_PATTERN = re.compile(r"iter-(\d+)\.weights\.h5$")


def folder(run_dir):
    return os.path.join(run_dir, FOLDER)


def weights_name(iteration):
    return f"iter-{iteration:08d}.weights.h5"


def save(model, run_dir, iteration, epoch, extra=None):
    """Write the training state at ``iteration`` and point ``last.json`` at it."""
    target = os.path.join(folder(run_dir), weights_name(iteration))
    os.makedirs(folder(run_dir), exist_ok=True)
    check_room(target, _checkpoint_bytes(model, run_dir))
    with atomic_path(target, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    record = _point_last(run_dir, os.path.basename(target), iteration, epoch, time.localtime(),
                         extra)
    prune(run_dir)
    return record


#: What an HDF5 weights file takes beyond its arrays: per array (headers, B-tree nodes;
#: measured about 1 KiB), and once (superblock, groups, the free space a writer needs).
_HDF5_BYTES_PER_ARRAY = 2048
_HDF5_BYTES_PER_FILE = 1 << 20


def _checkpoint_bytes(model, run_dir):
    """How much room the next checkpoint needs: the newest one's size (the same model writes
    the same arrays), or for the first an estimate from the model's and its optimisers'
    variables that errs on the large side."""
    newest = _iteration_files(run_dir)
    if newest:
        with contextlib.suppress(OSError):
            return os.path.getsize(newest[0][1]) + _HDF5_BYTES_PER_FILE
    import keras

    variables = list(getattr(model, "weights", ()))  # anything with save_weights may be saved
    for value in vars(model).values():
        if isinstance(value, keras.optimizers.Optimizer):
            variables += list(value.variables)
    arrays = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return arrays + _HDF5_BYTES_PER_ARRAY * len(variables) + _HDF5_BYTES_PER_FILE


def _point_last(run_dir, weights, iteration, epoch, saved, extra=None):
    """Write ``last.json`` naming ``weights`` (saved at ``saved``, a ``time.struct_time``)."""
    record = {"weights": weights, "iteration": int(iteration), "epoch": int(epoch),
              "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S", saved), **(extra or {})}
    write_json(os.path.join(folder(run_dir), "last.json"), record)
    return record


def mark_best(run_dir, record):
    """Remember ``record`` (a ``last.json``-style dict with a score) as the best checkpoint."""
    write_json(os.path.join(folder(run_dir), "best.json"), record)


class DamagedRecord(UserError):
    """A ``last.json`` / ``best.json`` that cannot be used: not JSON, not a checkpoint record,
    or naming a weights file that is missing. ``path`` is the file, ``reason`` why in a few
    words (for a message that goes on to say what is done instead)."""

    def __init__(self, message, path, reason):
        super().__init__(message)
        self.path = path
        self.reason = reason


def _read_record_file(path):
    """The dict in a ``last.json`` / ``best.json``; a damaged or foreign file (not JSON, or JSON
    without the name of a weights file) is a :class:`DamagedRecord` naming it."""
    try:
        record = read_json(path)
    except DamagedJSONError as error:
        raise DamagedRecord(str(error), path,
                            f"not valid JSON: {error.msg} at line {error.lineno}, column "
                            f"{error.colno}") from None
    if not isinstance(record, dict) or not isinstance(record.get("weights"), str):
        raise DamagedRecord(f"{path} is not a checkpoint record written by hvitgan-tf (expected "
                            '{"weights": "iter-N.weights.h5", "iteration": N, ...}); restore '
                            "it, or make it name one of the iter-*.weights.h5 files beside it",
                            path, "not a checkpoint record written by hvitgan-tf")
    return record


def check_best(run_dir):
    """Read ``best.json`` (where it exists) so that a damaged one is named before a resumed run
    writes anything: ``prune`` reads it at every save. (``last.json`` is checked, and replaced
    when damaged, by :func:`resume_point`.)"""
    path = os.path.join(folder(run_dir), "best.json")
    if os.path.exists(path):
        _read_record_file(path)


def read_record(run_dir, which="last"):
    """The ``last``/``best`` record, or ``None`` if there is none."""
    path = os.path.join(folder(run_dir), f"{which}.json")
    if not os.path.exists(path):
        return None
    record = _read_record_file(path)
    weights = os.path.join(folder(run_dir), record["weights"])
    if not os.path.exists(weights):
        raise DamagedRecord(f"{path} names {record['weights']}, which is missing from "
                            f"{folder(run_dir)}", path,
                            f"it names {record['weights']}, which is missing")
    record["path"] = weights
    return record


def resume_point(run_dir):
    """Where ``--resume`` continues: ``(record, note)``, or ``(None, None)`` when the run has
    no checkpoint at all.

    ``record`` is ``last.json``'s (with ``path``) and ``note`` None when both it and the
    weights file it names are intact. Otherwise (a disk that filled, a copy cut short, a file
    copied over another) ``record`` is the newest intact ``iter-N`` checkpoint's and ``note``
    one line naming the damaged file and the checkpoint used instead. Checkpoint files are
    only published by renaming a complete file, so the highest intact N is the newest state
    that was saved. A :class:`UserError` naming the damaged file when none is intact.
    """
    last_json = os.path.join(folder(run_dir), "last.json")
    before = None  # look only below the damaged checkpoint's iteration, if one is named
    try:
        record = read_record(run_dir, "last")
    except DamagedRecord as error:
        damaged, reason = error.path, error.reason
    else:
        if record is None:
            if not _iteration_files(run_dir):
                return None, None
            # A kill between the first weights file and its last.json.
            damaged, reason = last_json, "missing"
        else:
            reason = damage(record["path"])
            if reason is None:
                return record, None
            damaged, before = f"the last checkpoint {record['path']}", int(record["iteration"])
    older = newest_intact(run_dir, before=before)
    if older is None:
        raise UserError(f"--resume: {damaged} is damaged ({reason}) and {folder(run_dir)} "
                        f"holds no intact {'older ' if before is not None else ''}"
                        "iter-*.weights.h5 checkpoint to continue from")
    return older, (f"{damaged} is damaged ({reason}); resuming from {older['path']} "
                   f"(iteration {older['iteration']}) instead")


def kept(run_dir):
    """The checkpoint a stopped run keeps (for saying so): ``last.json``'s record, or when it
    is damaged the newest intact ``iter-N`` file's (what ``--resume`` would take); ``None``
    when there is none."""
    try:
        record = read_record(run_dir, "last")
    except (UserError, OSError, ValueError):
        record = None
    return record if record is not None else newest_intact(run_dir)


def repair_last(run_dir, record, epoch):
    """Point ``last.json`` at ``record`` (from :func:`resume_point`), replacing a damaged one,
    so that everything reading it later (the end of the run, ``export``, Ctrl-C's message)
    sees the checkpoint the run continued from."""
    _point_last(run_dir, record["weights"], record["iteration"], epoch,
                time.localtime(os.path.getmtime(record["path"])))


def resolve(run_dir, checkpoint="last"):
    """``last`` | ``best`` | a path to a ``.weights.h5`` file -> absolute weights path."""
    if checkpoint in ("last", "best"):
        record = read_record(run_dir, checkpoint)
        if record is None and checkpoint == "best":
            # No FID was ever computed: "best" falls back to the newest state.
            record = read_record(run_dir, "last")
        if record is None:
            raise UserError(f"{run_dir} has no checkpoint yet ({folder(run_dir)}/last.json)")
        return record["path"]
    if not os.path.isfile(checkpoint):
        raise UserError(f"checkpoint {checkpoint!r} is not 'last', 'best' or an existing file")
    return checkpoint


def damage(path):
    """Why the weights file ``path`` cannot be read back (``None`` when every array reads).

    Reads every dataset, so a file cut short anywhere is caught before Keras half-loads it.
    """
    import h5py

    arrays = []
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda name, item: arrays.append(item[()])
                              if isinstance(item, h5py.Dataset) else None)
    except Exception as error:  # h5py raises OSError, KeyError, RuntimeError, ValueError...
        return f"{type(error).__name__}: {error}"
    return None if arrays else "no arrays in the file"


def _iteration_files(run_dir):
    """``[(N, path)]`` of the ``iter-N.weights.h5`` files of the run, newest first."""
    files = glob.glob(os.path.join(folder(run_dir), "iter-*.weights.h5"))
    return sorted(((int(_PATTERN.search(p).group(1)), p) for p in files), reverse=True)


def newest_intact(run_dir, before=None):
    """``{"path", "iteration", "weights"}`` of the newest readable ``iter-N`` checkpoint (with
    ``N < before`` when given), or ``None``."""
    for iteration, path in _iteration_files(run_dir):
        if (before is None or iteration < before) and damage(path) is None:
            return {"path": path, "iteration": iteration, "weights": os.path.basename(path)}
    return None


def load_into(model, path):
    """``model.load_weights(path)``, with a damaged or foreign file named as a UserError."""
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise UserError(f"cannot read the checkpoint {path}: it is damaged or not an "
                        f"hvitgan-tf checkpoint of this model ({type(error).__name__}: "
                        f"{error})") from None


def prune(run_dir):
    """Drop old iterations (never the best) and temp files a killed writer left behind."""
    for stale in glob.glob(os.path.join(folder(run_dir), ".tmp-*")):
        os.remove(stale)
    keep = set()
    for which in ("last", "best"):
        path = os.path.join(folder(run_dir), f"{which}.json")
        if os.path.exists(path):
            keep.add(_read_record_file(path)["weights"])
    files = sorted(glob.glob(os.path.join(folder(run_dir), "iter-*.weights.h5")),
                   key=lambda p: int(_PATTERN.search(p).group(1)))
    recent = {os.path.basename(p) for p in files[-KEEP:]}
    for path in files:
        name = os.path.basename(path)
        if name not in keep and name not in recent:
            os.remove(path)
