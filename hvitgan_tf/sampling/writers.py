"""The output folder of ``hvitgan-tf sample``: what is written, in which order, and how a rerun
resumes (docs/method.md §6.4).

Layout::

    OUT/<class name>/<id>.png      one PNG per kept image        (--format png | both)
    OUT/samples-00000.tfrecord     tf.train.Example shards       (--format tfrecord | both)
    OUT/manifest.csv               one row per kept image (COLUMNS)
    OUT/sampling.json              model, settings and committed per-class counters
    OUT/classes.json               the model's class names in label order (for tfrecord:)

``--data folder:OUT`` reads the PNGs (``manifest.csv`` and the other files directly in OUT are
ignored by it) and ``--data tfrecord:OUT`` the shards (records carry ``image/class/text``; the
side files are skipped). The records are written with ``hvitgan_tf.data.tfrecord``'s
``serialize_example``, so the two modules cannot drift apart.

Crash safety — a ``kill -9`` at any instant leaves a folder a rerun can continue:

1. every PNG is written under a hidden temporary name (``.tmp-*``) and renamed;
2. a shard is written as ``.tmp-*.tfrecord`` and renamed to ``samples-NNNNN.tfrecord`` when it
   is closed (full, or at the end of the run);
3. a manifest row is appended as soon as every file it names has its final name (a PNG's row
   right after its rename; rows of a shard still open wait for it), whole or not at all, and
   the manifest is fsync'ed once per batch: it never lists a missing file;
4. ``sampling.json``'s counters are rewritten (atomically) only after the rows they count.

A failed write (a full disk: :class:`NoSpaceLeft`) stops the writer and leaves the same kind of
folder: the files whose rows are listed stay, the file being written and any not yet listed (the
open shard, the PNGs whose rows wait for it) are removed, so the manifest lists exactly the
complete files on disk and rerunning the same command continues.

On reopening, :class:`OutputFolder` drops a torn last manifest line, removes ``.tmp-*`` files,
PNGs and shards no manifest row names (written just before a crash; the rerun regenerates the
very same images), and continues every class after its last kept attempt (``seeds`` module).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import hashlib
import io
import json
import os
import queue
import re
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from hvitgan_tf import fileio, imaging
from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import describe
from hvitgan_tf.fileio import (atomic_open, atomic_path, file_mode, is_disk_full, lock_folder,
                               read_json, write_json)
from hvitgan_tf.sampling.seeds import parse_sample_id

MANIFEST = "manifest.csv"
STATE = "sampling.json"
CLASSES = "classes.json"
STATE_FORMAT = "hvitgan-tf/samples"
STATE_FORMAT_VERSION = 1
COLUMNS = ("id", "class", "label", "confidence", "seed", "truncation", "attempt",
           "model_name", "model_version", "file", "tfrecord")
FORMATS = ("png", "tfrecord")
SHARD_PREFIX = "samples-"
SHARD_SUFFIX = ".tfrecord"
_SHARD = re.compile(r"^samples-([0-9]{5,})\.tfrecord$")
_TMP_PREFIX = ".tmp-"
#: Settings that must match for a rerun to continue the same sampling job.
RESUME_SETTINGS = ("seed", "truncation", "threshold", "formats")


@dataclasses.dataclass
class KeptSample:
    """One image that passed the confidence threshold, on its way to disk."""

    id: str
    label: int
    class_name: str
    attempt: int
    seed: int
    truncation: float
    confidence: float
    image: np.ndarray  # uint8 [S, S, 3]


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}{SHARD_SUFFIX}"


def png_name(class_name: str, sample: str) -> str:
    """Path of a PNG relative to OUT (``/`` separated, as in the manifest)."""
    return f"{class_name}/{sample}.png"


def check_class_names(class_names: Sequence[str]):
    """Class names become folder names: refuse the ones that cannot be (or would be hidden)."""
    for name in class_names:
        if (not name or name in (".", "..") or name.startswith(".") or "/" in name
                or "\\" in name or "\0" in name):
            raise UserError(f"class name {name!r} cannot be a folder name under OUT (folder: "
                            "output); use --format tfrecord, or re-export with other names")


def model_identity(metadata: dict) -> dict:
    """What makes two exports "the same model" for resuming: name, version and a hash of the
    config, class names, checkpoint and export time (a re-export changes the hash)."""
    fingerprint = json.dumps({key: metadata.get(key) for key in (
        "model_config", "class_names", "checkpoint", "exported_at")}, sort_keys=True)
    return {"name": metadata["name"], "version": int(metadata["version"]),
            "fingerprint": hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16],
            "description": describe(metadata), "model_dir": metadata.get("model_dir")}


# -- manifest --------------------------------------------------------------------------------

def format_row(sample: KeptSample, model: dict, file: str, shard: str) -> Dict[str, str]:
    return {
        "id": sample.id, "class": sample.class_name, "label": str(sample.label),
        # repr of the float32 value as a float64: exact, so "confidence >= threshold" holds
        # for the text as it held for the number the decision was made on.
        "confidence": repr(float(np.float32(sample.confidence))),
        "seed": str(int(sample.seed)), "truncation": repr(float(np.float32(sample.truncation))),
        "attempt": str(int(sample.attempt)), "model_name": model["name"],
        "model_version": str(model["version"]), "file": file, "tfrecord": shard,
    }


def read_manifest(path: str):
    """``(rows, clean)``: complete rows of a manifest; ``clean`` is False when a torn last
    line or malformed rows were dropped (the file should then be rewritten)."""
    if not os.path.exists(path):
        return [], True
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is damaged: not UTF-8 text, so not an hvitgan-tf manifest "
                        f"(columns {', '.join(COLUMNS)})") from None
    clean = True
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]  # a row whose append was cut short
        clean = False
    reader = csv.DictReader(io.StringIO(text))
    if text and tuple(reader.fieldnames or ()) != COLUMNS:
        raise UserError(f"{path} does not have the columns of an hvitgan-tf manifest "
                        f"({', '.join(COLUMNS)})")
    rows = []
    for row in reader:
        if None in row or any(row.get(key) is None for key in COLUMNS):
            clean = False
            continue
        rows.append(row)
    return rows, clean


def _csv_text(rows, header=False) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_manifest(path: str, rows):
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(_csv_text(rows, header=True))


def append_manifest(path: str, rows, sync: bool = True):
    """Append ``rows`` whole or not at all: a write that fails part-way (a full disk) is cut
    back to the old length, so the manifest never ends in a torn row. ``sync``: fsync them."""
    if not rows:
        return
    data = memoryview(_csv_text(rows).encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
            if sync:
                os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)  # shrinking needs no space
            raise
    finally:
        os.close(fd)


def _sync(path: str):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- a full disk -----------------------------------------------------------------------------

class NoSpaceLeft(fileio.NoSpaceLeft):
    """The disk (or the user's quota) filled up while writing into OUT. The complete images
    stay, each listed in the manifest, so the same command continues once there is space."""

    def __init__(self, path: str, kept: int, folder: str):
        super().__init__(path, f"{kept} images kept in {folder} (each listed in its "
                               f"{MANIFEST}); free some space and rerun the same command to "
                               "continue")
        self.kept, self.folder = kept, folder


# -- output folder ---------------------------------------------------------------------------

@dataclasses.dataclass
class ClassProgress:
    """What a folder already holds of one class."""

    kept: int = 0
    attempts: int = 0  # next attempt index (attempts 0 .. attempts-1 are decided)
    confidence_sum: float = 0.0


class OutputFolder:
    """An output folder opened for (re)sampling: validated, cleaned, counted.

    Args:
        out_dir: OUT.
        metadata: the model's ``read_export_metadata`` dict.
        settings: ``{"seed", "truncation", "threshold", "formats"}`` of this run.
    Raises ``UserError`` when OUT holds other files, or samples of another model or settings.
    """

    def __init__(self, out_dir: str, metadata: dict, settings: dict):
        self.path = os.path.abspath(os.fspath(out_dir))
        self.model = model_identity(metadata)
        self.class_names = list(metadata["class_names"])
        self.settings = dict(settings)
        self.manifest_path = os.path.join(self.path, MANIFEST)
        self.state_path = os.path.join(self.path, STATE)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UserError(f"--out {self.path} is a file; give a folder")
        # One writer per folder: a second sampler (CLI or Beam) would interleave manifests.
        lock_folder(self.path, "sample")
        state = self._check_existing()
        self.resumed = state is not None
        rows, clean = read_manifest(self.manifest_path)
        self.rows = self._verified(rows)
        if not clean or len(self.rows) != len(rows):
            clean = False
        self.progress = self._count(state)

        where = self.path
        try:
            os.makedirs(self.path, exist_ok=True)
            self._remove_leftovers()
            if not clean or not os.path.exists(self.manifest_path):
                where = self.manifest_path
                write_manifest(self.manifest_path, self.rows)
            where = os.path.join(self.path, CLASSES)
            write_json(where, self.class_names)
            where = self.state_path
            self.write_state(self.progress)
        except Exception as error:
            if is_disk_full(error):
                raise NoSpaceLeft(where, len(self.rows), self.path) from error
            raise

    # -- validation ------------------------------------------------------------------------
    def _check_existing(self) -> Optional[dict]:
        if not os.path.isdir(self.path):
            return None
        if not os.path.exists(self.state_path):
            # Plain files directly in OUT are harmless (neither folder: nor tfrecord: reads
            # them; the benchmark keeps a record there). Sub-folders, shards or a manifest
            # would mix with the samples: refuse those.
            entries = sorted(e for e in os.listdir(self.path) if not e.startswith(".") and (
                os.path.isdir(os.path.join(self.path, e)) or ".tfrecord" in e or e == MANIFEST))
            if not entries:
                return None
            rows, _ = (read_manifest(self.manifest_path) if os.path.exists(self.manifest_path)
                       else ([], True))
            other = {(r["model_name"], r["model_version"]) for r in rows}
            mine = (self.model["name"], str(self.model["version"]))
            if other and other != {mine}:
                names = ", ".join(f"{n} v{v}" for n, v in sorted(other))
                raise UserError(f"--out {self.path} holds samples of another model ({names}; "
                                f"--model is {self.model['description']}); sample into a new "
                                "folder")
            raise UserError(f"--out {self.path} holds data not written by 'hvitgan-tf "
                            f"sample' (no {STATE}; found {', '.join(entries[:3])}"
                            f"{', ...' if len(entries) > 3 else ''}); choose a new or empty "
                            "folder")
        state = read_json(self.state_path)  # a damaged one is named (DamagedJSONError)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise UserError(f"{self.state_path} was not written by 'hvitgan-tf sample'")
        theirs = state.get("model") or {}
        if (theirs.get("name"), theirs.get("version"), theirs.get("fingerprint")) != (
                self.model["name"], self.model["version"], self.model["fingerprint"]):
            raise UserError(
                f"--out {self.path} holds samples of {theirs.get('description', '?')} but "
                f"--model is {self.model['description']}; resume with the same model or "
                "sample into another --out folder")
        previous = state.get("settings") or {}
        changed = [f"{key} {_show(previous.get(key))} -> {_show(self.settings.get(key))}"
                   for key in RESUME_SETTINGS
                   if _comparable(previous.get(key)) != _comparable(self.settings.get(key))]
        if changed:
            raise UserError(
                f"--out {self.path} was sampled with other settings ({'; '.join(changed)}); "
                "rerun with the same --seed/--truncation/--threshold/--format to resume, or "
                "sample into another --out folder")
        return state

    def _verified(self, rows):
        """Rows whose files exist, once per id."""
        kept, seen = [], set()
        for row in rows:
            try:
                name, attempt = parse_sample_id(row["id"])
                label = int(row["label"])
            except ValueError:
                continue
            if (row["id"] in seen or not 0 <= label < len(self.class_names)
                    or self.class_names[label] != row["class"] or name != row["class"]
                    or int(row["attempt"]) != attempt):
                continue
            files = [row["file"]] if row["file"].endswith(".png") else []
            files += [row["tfrecord"]] if row["tfrecord"] else []
            if all(_nonempty(os.path.join(self.path, f)) for f in files) and files:
                kept.append(row)
                seen.add(row["id"])
        return kept

    def _count(self, state) -> Dict[int, ClassProgress]:
        progress = {label: ClassProgress() for label in range(len(self.class_names))}
        for row in self.rows:
            entry = progress[int(row["label"])]
            entry.kept += 1
            entry.attempts = max(entry.attempts, int(row["attempt"]) + 1)
            entry.confidence_sum += float(row["confidence"])
        # Attempts rejected after the last kept one are known from the committed counters, if
        # those count exactly the rows that survived (otherwise they are simply redone).
        for name, saved in ((state or {}).get("classes") or {}).items():
            if name in self.class_names:
                entry = progress[self.class_names.index(name)]
                if int(saved.get("kept", -1)) == entry.kept:
                    entry.attempts = max(entry.attempts, int(saved.get("attempts", 0)))
        return progress

    def _remove_leftovers(self):
        """Temporary files, and PNGs / shards that no manifest row names (see module doc)."""
        listed_png = {row["file"] for row in self.rows if row["file"].endswith(".png")}
        listed_shards = {row["tfrecord"] for row in self.rows if row["tfrecord"]}
        for path in glob.glob(os.path.join(self.path, _TMP_PREFIX + "*")):
            _remove(path)
        for entry in os.listdir(self.path):
            if _SHARD.match(entry) and entry not in listed_shards:
                _remove(os.path.join(self.path, entry))
        for name in self.class_names:
            folder = os.path.join(self.path, name)
            if not os.path.isdir(folder):
                continue
            for entry in os.listdir(folder):
                if entry.startswith(_TMP_PREFIX):
                    _remove(os.path.join(folder, entry))
                elif entry.endswith(".png") and f"{name}/{entry}" not in listed_png:
                    try:
                        if parse_sample_id(entry[:-4])[0] == name:
                            _remove(os.path.join(folder, entry))
                    except ValueError:
                        pass  # not ours: leave it alone

    # -- bookkeeping -----------------------------------------------------------------------
    def next_shard_index(self) -> int:
        indices = [int(m.group(1)) for m in map(_SHARD.match, os.listdir(self.path)) if m]
        return max(indices, default=-1) + 1

    def write_state(self, progress: Dict[int, ClassProgress]):
        write_json(self.state_path, {
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "model": self.model,
            "settings": {key: self.settings.get(key) for key in RESUME_SETTINGS},
            "classes": {self.class_names[label]: {"kept": entry.kept, "attempts": entry.attempts}
                        for label, entry in progress.items()},
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


def _show(value):
    return ",".join(value) if isinstance(value, (list, tuple)) else repr(value)


def _comparable(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _nonempty(path):
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# -- writing ---------------------------------------------------------------------------------

class ShardWriter:
    """TFRecord shards of at most ``shard_size`` records, published by renaming on close."""

    def __init__(self, folder: str, shard_size: int, first_index: int):
        self.folder = folder
        self.shard_size = int(shard_size)
        self.index = first_index
        self._writer = None
        self._tmp = None
        self._count = 0
        self.closed_shards: List[str] = []

    @property
    def current_name(self) -> str:
        return shard_name(self.index)

    def add(self, record: bytes) -> bool:
        """Write one serialized record; True when this closed (published) the shard."""
        import tensorflow as tf

        if self._writer is None:
            fd, self._tmp = tempfile.mkstemp(dir=self.folder, prefix=_TMP_PREFIX,
                                             suffix=SHARD_SUFFIX)
            os.close(fd)
            self._writer = tf.io.TFRecordWriter(self._tmp)
        self._writer.write(record)
        self._count += 1
        if self._count >= self.shard_size:
            self.close()
            return True
        return False

    def close(self) -> Optional[str]:
        """Publish the open shard (if any records were written); returns its name."""
        if self._writer is None:
            return None
        name = self.current_name
        self._writer.close()
        os.chmod(self._tmp, file_mode())
        os.replace(self._tmp, os.path.join(self.folder, name))
        self.closed_shards.append(name)
        self._writer, self._tmp, self._count = None, None, 0
        self.index += 1
        return name

    def discard(self):
        """Drop the open shard unpublished (after a failure: its records have no rows)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            with contextlib.suppress(OSError):
                _remove(self._tmp)
        self._writer, self._tmp, self._count = None, None, 0


class SampleWriter:
    """Writes batches of kept samples in the order of the module docstring (one thread).

    After a failed write the writer is ``failed``: it has removed what it could not list
    (:meth:`_abandon`) and writes nothing more; a full disk is raised as :class:`NoSpaceLeft`
    naming the file and the images kept.
    """

    def __init__(self, output: OutputFolder, formats: Sequence[str], shard_size: int = 1024):
        from hvitgan_tf.data.tfrecord import serialize_example

        self._serialize = serialize_example
        self.output = output
        self.formats = tuple(formats)
        self.shards = (ShardWriter(output.path, shard_size, output.next_shard_index())
                       if "tfrecord" in self.formats else None)
        self._pending_rows: List[dict] = []
        self._pending_progress = None
        self._unlisted: List[str] = []  # files (relative to OUT) on disk but not yet listed
        self._where = output.path  # what is being written, for the message of a failure
        self.listed = len(output.rows)  # rows in the manifest: the images kept in OUT
        self.failed = False
        self.written = 0
        self.busy_seconds = 0.0
        self.pngs = 0
        self.records = 0

    def write(self, samples: Sequence[KeptSample], progress: Dict[int, ClassProgress]):
        """Write one batch; ``progress`` is the per-class state once this batch is counted."""
        if self.failed:
            raise RuntimeError("this SampleWriter has failed; open the folder again")
        began = time.perf_counter()
        try:
            listed_before = self.listed
            for sample in samples:
                self._write_sample(sample)
            if self.listed > listed_before:
                self._where = self.output.manifest_path
                _sync(self.output.manifest_path)
            self.written += len(samples)
            if not self._pending_rows:
                # Every row up to this batch is listed: its counters may be committed.
                self._where = self.output.state_path
                self.output.write_state(progress)
            self._pending_progress = progress
        except BaseException as error:
            self._fail(error)
        finally:
            self.busy_seconds += time.perf_counter() - began

    def _write_sample(self, sample: KeptSample):
        encoded = imaging.encode_png(sample.image)
        file = ""
        if "png" in self.formats:
            file = png_name(sample.class_name, sample.id)
            self._where = os.path.join(self.output.path, file)
            _write_bytes(self._where, encoded)
            self._unlisted.append(file)
            self.pngs += 1
        shard = ""
        closed = None
        if self.shards is not None:
            shard = self.shards.current_name
            self._where = os.path.join(self.output.path, shard)
            if self.shards.add(self._serialize(
                    encoded, sample.label, confidence=float(sample.confidence),
                    class_name=sample.class_name)):
                closed = shard
                self._unlisted.append(shard)
            self.records += 1
        row = format_row(sample, self.output.model, file or shard, shard)
        if self.shards is None:
            self._list([row])
        else:
            self._pending_rows.append(row)
            if closed:
                self._list(self._pending_rows)
                self._pending_rows = []

    def _list(self, rows):
        """Append rows whose files all have their final names (unsynced: once per batch)."""
        self._where = self.output.manifest_path
        append_manifest(self.output.manifest_path, rows, sync=False)
        self.listed += len(rows)
        self._unlisted = []  # every file written so far belongs to a listed row now

    def close(self):
        """Publish the open shard and the rows waiting for it; commit the counters."""
        if self.failed:
            return
        began = time.perf_counter()
        try:
            if self.shards is not None:
                self._where = os.path.join(self.output.path, self.shards.current_name)
                name = self.shards.close()
                if name:
                    self._unlisted.append(name)
            if self._pending_rows:
                self._list(self._pending_rows)
                self._pending_rows = []
                _sync(self.output.manifest_path)
            if self._pending_progress is not None:
                self._where = self.output.state_path
                self.output.write_state(self._pending_progress)
        except BaseException as error:
            self._fail(error)
        finally:
            self.busy_seconds += time.perf_counter() - began

    def _fail(self, error: BaseException):
        self._abandon()
        if is_disk_full(error):
            raise NoSpaceLeft(self._where, self.listed, self.output.path) from error
        raise error

    def _abandon(self):
        """Leave OUT as a rerun expects it after a failure: the manifest lists exactly the
        complete files. The open shard and every written file without a listed row (the PNGs
        waiting for that shard; a PNG or shard whose row could not be appended) are removed;
        the rerun writes them again, byte for byte. The temporary file of the write that failed
        was removed by ``atomic_path``."""
        self.failed = True
        if self.shards is not None:
            self.shards.discard()
            self.shards.closed_shards = [name for name in self.shards.closed_shards
                                         if name not in self._unlisted]
        for file in self._unlisted:
            with contextlib.suppress(OSError):
                _remove(os.path.join(self.output.path, file))
        self._unlisted, self._pending_rows = [], []


def bytes_per_sample(samples: Sequence[KeptSample], model: dict, formats: Sequence[str],
                     block_size: int = 1) -> float:
    """Mean bytes :class:`SampleWriter` stores per sample for ``samples``: the PNG (rounded up
    to whole ``block_size`` blocks, as the file system allocates it), the TFRecord record with
    its framing, and the manifest row. For estimating what a plan needs."""
    from hvitgan_tf.data.tfrecord import serialize_example

    block_size = max(1, int(block_size))
    total = 0
    for sample in samples:
        encoded = imaging.encode_png(sample.image)
        if "png" in formats:
            total += -(-len(encoded) // block_size) * block_size
        if "tfrecord" in formats:
            # A TFRecord frames each record with its length and two CRCs (8 + 4 + 4 bytes).
            total += 16 + len(serialize_example(encoded, sample.label,
                                                confidence=float(sample.confidence),
                                                class_name=sample.class_name))
        total += len(_csv_text([format_row(sample, model, png_name(sample.class_name, sample.id),
                                           shard_name(0) if "tfrecord" in formats else "")]))
    return total / max(1, len(samples))


def _write_bytes(path: str, data: bytes):
    with atomic_path(path, suffix=".png") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, file_mode())


class BackgroundWriter:
    """Runs a :class:`SampleWriter` in a thread so that generating batch k+1 overlaps writing
    batch k. At most ``depth`` batches wait; ``submit`` blocks beyond that (and counts the
    time as ``wait_seconds``: the writer was the bottleneck). A failure in the thread is raised
    by the next ``submit`` or by ``finish``; batches queued behind the failed one are never
    written (kept while the failed one's images are not, they would make a rerun continue
    after them and never redo the missing ones).
    """

    _DONE = object()

    def __init__(self, writer: SampleWriter, depth: int = 2):
        self.writer = writer
        self.wait_seconds = 0.0
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="hvitgan-sample-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is self._DONE:
                    return
                if not self._failed:
                    self.writer.write(*item)
            except BaseException as error:  # surfaced in the main thread
                self._error, self._failed = error, True
            finally:
                self._queue.task_done()

    def _raise_error(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, samples: Sequence[KeptSample], progress: Dict[int, ClassProgress]):
        self._raise_error()
        began = time.perf_counter()
        self._queue.put((list(samples), {k: dataclasses.replace(v) for k, v in progress.items()}))
        self.wait_seconds += time.perf_counter() - began

    def finish(self):
        """Write everything submitted, publish the open shard, stop the thread."""
        began = time.perf_counter()
        self._queue.put(self._DONE)
        self._thread.join()
        self.wait_seconds += time.perf_counter() - began
        self._raise_error()
        if not self._failed:
            self.writer.close()
