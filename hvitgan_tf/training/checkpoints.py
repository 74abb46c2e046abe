"""Checkpoints of the full training state, crash-safe.

Layout under ``RUN_DIR/checkpoints/``::

    iter-00000120.weights.h5   # HViTGAN.save_weights: G, D, EMA G, both optimisers, s_i
    last.json                  # {"weights": "iter-00000120.weights.h5", "iteration": 120, ...}
    best.json                  # the checkpoint with the lowest validation FID (if computed)

Each weights file is written under a temporary name and renamed; ``last.json`` is replaced only
after its weights file exists. A ``kill -9`` at any instant therefore leaves a ``last.json``
that points at a complete file. Old iterations are pruned, but never the one ``best.json`` names.
"""
import glob
import os
import re
import time

from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import atomic_path, read_json, write_json

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
    with atomic_path(target, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    record = {"weights": os.path.basename(target), "iteration": int(iteration),
              "epoch": int(epoch), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    record.update(extra or {})
    write_json(os.path.join(folder(run_dir), "last.json"), record)
    prune(run_dir)
    return record


def mark_best(run_dir, record):
    """Remember ``record`` (a ``last.json``-style dict with a score) as the best checkpoint."""
    write_json(os.path.join(folder(run_dir), "best.json"), record)


def _read_record_file(path):
    """The dict in a ``last.json`` / ``best.json``; a damaged or foreign file (not JSON, or JSON
    without the name of a weights file) is a ``UserError`` naming it."""
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("weights"), str):
        raise UserError(f"{path} is not a checkpoint record written by hvitgan-tf (expected "
                        '{"weights": "iter-N.weights.h5", "iteration": N, ...}); restore it, '
                        "or make it name one of the iter-*.weights.h5 files beside it")
    return record


def check_records(run_dir):
    """Read ``last.json`` and ``best.json`` (where they exist) so that a damaged one is named
    before a resumed run writes anything: ``prune`` reads both at every save."""
    for which in ("last", "best"):
        path = os.path.join(folder(run_dir), f"{which}.json")
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
        raise UserError(f"{path} names {record['weights']}, which is missing from {folder(run_dir)}")
    record["path"] = weights
    return record


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


def newest_intact(run_dir, before):
    """``{"path", "iteration", "weights"}`` of the newest readable ``iter-N`` checkpoint with
    ``N < before``, or ``None``."""
    files = glob.glob(os.path.join(folder(run_dir), "iter-*.weights.h5"))
    found = sorted(((int(_PATTERN.search(p).group(1)), p) for p in files), reverse=True)
    for iteration, path in found:
        if iteration < before and damage(path) is None:
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
