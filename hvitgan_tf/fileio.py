"""Atomic file output: write under a temporary name in the destination folder, then rename.

A crash (or ``kill -9``) at any moment leaves either the old file or the new one, never a
half-written one; ``os.replace`` is atomic within one file system. A full disk removes the
temporary and is raised as :class:`NoSpaceLeft` naming the file, the one disk-full error of the
package (:func:`is_disk_full` recognises the forms the writers underneath raise). Also here:
the per-folder writer locks.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

from hvitgan_tf.errors import UserError


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask when the package was imported: temporary files are created 0600 and
#: folders 0700, and are given the permissions an ordinary ``open`` / ``mkdir`` would.
_UMASK = _current_umask()


def file_mode():
    """Permissions of a new ordinary file under the umask (0644 under the usual 022)."""
    return 0o666 & ~_UMASK


class DamagedJSONError(UserError, json.JSONDecodeError):
    """A JSON file the tool wrote earlier that no longer parses (truncated, overwritten).

    Also a ``json.JSONDecodeError``, so callers that recover from one keep doing so."""

    def __init__(self, path, msg, doc, pos):
        json.JSONDecodeError.__init__(self, msg, doc, pos)
        self.path = os.fspath(path)

    def __str__(self):
        return (f"{self.path} is damaged: not valid JSON ({self.msg} at line {self.lineno}, "
                f"column {self.colno})")


# -- a full disk -----------------------------------------------------------------------------

#: The errors of a full file system and of an exhausted quota.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC / EDQUOT from Python (h5py and PIL raise them as ``OSError`` too), or TensorFlow's
    form of it: its file writers (TFRecord, event files, SavedModel) raise
    ``ResourceExhaustedError`` with the system's message. That class also means "out of
    memory", so for TensorFlow the message decides."""
    if isinstance(error, OSError):
        return error.errno in _DISK_FULL
    tf = sys.modules.get("tensorflow")
    return (tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)
            and any(os.strerror(code) in str(error) for code in _DISK_FULL))


class NoSpaceLeft(UserError, OSError):
    """The disk (or the user's quota) filled up while writing ``path``.

    ``aftermath`` says what the failure leaves and how to go on; the code that knows (the
    command that was running) adds it with :meth:`then`, so the user reads one line:
    "no space left on device writing PATH: AFTERMATH". Also an ``OSError`` with errno
    ENOSPC, so callers that handle a full disk's ``OSError`` keep doing so."""

    def __init__(self, path, aftermath=None):
        OSError.__init__(self, errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        self.path = os.fspath(path)
        self.aftermath = aftermath

    def __str__(self):
        return f"no space left on device writing {self.path}" + (
            f": {self.aftermath}" if self.aftermath else "")

    def then(self, aftermath):
        """The same failure, with ``aftermath`` added to what it already says."""
        said = "; ".join(part for part in (self.aftermath, aftermath) if part)
        return NoSpaceLeft(self.path, said)

    @classmethod
    def of(cls, error, default_path):
        """``error`` (a full disk, :func:`is_disk_full`) as a :class:`NoSpaceLeft`: itself, or
        one naming the file the error names, else ``default_path``."""
        if isinstance(error, NoSpaceLeft):
            return error
        filename = getattr(error, "filename", None)
        return cls(filename if isinstance(filename, str) and filename else default_path)


@contextlib.contextmanager
def naming_disk_full(path):
    """Raise a full disk met inside the block as :class:`NoSpaceLeft` naming ``path`` (what
    the block writes). One that already names a path is left as it is: the innermost writer
    knows best."""
    try:
        yield
    except NoSpaceLeft:
        raise
    except Exception as error:
        if is_disk_full(error):
            raise NoSpaceLeft(path) from error
        raise


def check_room(path, needed):
    """Raise :class:`NoSpaceLeft` naming ``path`` when its folder has less than ``needed``
    bytes free. For writers that do not fail cleanly on a full disk: HDF5 (Keras's weights
    files) reports ENOSPC again for every object it frees and can then crash the process, so
    a checkpoint is not started without room for it."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if shutil.disk_usage(folder).free < needed:
        raise NoSpaceLeft(path)


# -- atomic writes ---------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    For writers that want a file name rather than a handle (h5py, Keras ``save_weights``,
    PIL). ``suffix`` keeps an extension some writers insist on (``.weights.h5``). The
    temporary file is named after this process (see :func:`_writer_prefix`), so that one a
    ``kill -9`` leaves can be told from one being written. On any failure it is removed; a
    full disk is raised as :class:`NoSpaceLeft` naming ``path``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if suffix is None:
        suffix = "".join(_extensions(path))
    with naming_disk_full(path):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_writer_prefix(), suffix=suffix)
        os.close(fd)
        try:
            os.chmod(tmp, file_mode())
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
    """The parsed file; a damaged one raises :class:`DamagedJSONError` naming it."""
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DamagedJSONError(path, "not UTF-8 text", raw.decode("latin-1"),
                               error.start) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DamagedJSONError(path, error.msg, error.doc, error.pos) from None


def _host():
    """This machine's name as it appears in temporary folder names (no path separators)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


def _writer_prefix():
    """``.tmp-HOST-PID-``: a temporary file or folder that says which process is writing it,
    so a later writer can tell an abandoned one from one still being written."""
    return f".tmp-{_host()}-{os.getpid()}-"


# HOST may itself contain "-": the PID is the all-digit field before tempfile's random part.
# A file keeps its extension after that part; a folder has none, so a classifier export's
# ``.old`` folder (the previous export, moved aside just before the swap) is never taken for
# an abandoned one.
_WRITER_NAME = re.compile(
    r"^\.tmp-(?P<host>.+)-(?P<pid>[0-9]+)-[a-z0-9_]+(?P<suffix>(?:\.[A-Za-z0-9]+)*)$")
# The names of this package's temporaries before they carried a writer: tempfile's ".tmp-"
# and 8 random characters (then a file's extension).
_UNNAMED = re.compile(r"^\.tmp-[a-z0-9_]{8}(?P<suffix>(?:\.[A-Za-z0-9]+)*)$")
#: An unnamed temporary untouched for this long is abandoned: no writer of this package pauses
#: for hours between two writes into its temporary.
STALE_SECONDS = 24 * 3600
#: What an unnamed temporary may hold to be taken for one of ours: the extensions of the files
#: ``atomic_path`` writes, and the parts of a SavedModel ``atomic_directory`` is given.
_OUR_FILE_SUFFIXES = (".json", ".png", ".weights.h5", ".npz", ".csv", ".md")
_SAVED_MODEL_PARTS = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb", "variables",
                      "assets", "assets.extra"}


def _process_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def remove_abandoned_temporaries(parent):
    """Remove the temporaries in ``parent`` that no process will finish: those of a writer
    killed during :func:`atomic_path` or :func:`atomic_directory`. Returns the paths removed.

    Two kinds are recognised. A temporary named after its writer (see :func:`_writer_prefix`)
    is removed when that process, on this machine, no longer exists; one of a live process or
    of another machine (a shared file system: its pid means nothing here) is left alone, and a
    reused pid only makes a leftover wait for the next writer. A temporary in the unnamed form
    of earlier versions (``.tmp-`` and tempfile's 8 characters) is removed only when it is
    clearly ours and stale: a file with an extension this package writes, or a folder holding
    nothing but the parts of a SavedModel, in which nothing changed for :data:`STALE_SECONDS`.
    Anything else is not ours to judge and stays.
    """
    try:
        entries = os.listdir(parent)
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        path = os.path.join(parent, entry)
        if os.path.islink(path) or not (_dead_writers(entry, path) or _stale_unnamed(entry, path)):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(path)
    return removed


def _dead_writers(entry, path):
    """Whether ``entry`` is a temporary named after a writer on this machine that has died."""
    match = _WRITER_NAME.match(entry)
    if match is None or match["host"] != _host():
        return False
    if os.path.isdir(path) and match["suffix"]:
        return False  # a folder is named without an extension (``.old``: not a temporary)
    pid = int(match["pid"])
    return pid != os.getpid() and not _process_alive(pid)


def _stale_unnamed(entry, path):
    """Whether ``entry`` is an unnamed temporary that is clearly ours and stale."""
    match = _UNNAMED.match(entry)
    if match is None:
        return False
    if os.path.isdir(path):
        ours = not match["suffix"] and set(os.listdir(path)) <= _SAVED_MODEL_PARTS
    else:
        ours = match["suffix"] in _OUR_FILE_SUFFIXES
    return ours and time.time() - _newest_change(path) > STALE_SECONDS


def _newest_change(path):
    """The latest modification time of ``path`` and of everything under it."""
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a temporary folder beside ``path``; on success rename it to ``path``.

    Used for SavedModel versions: TF Serving watches the parent folder and must never see a
    half-written version. Fails if ``path`` already exists (versions are never overwritten).
    The temporary folder is named after this process (see :func:`_writer_prefix`); first, the
    ones that killed writers left in the parent are removed. On any failure the temporary
    folder is removed; a full disk is raised as :class:`NoSpaceLeft` naming ``path``.
    """
    path = os.fspath(path).rstrip("/")
    parent = os.path.dirname(os.path.abspath(path))
    with naming_disk_full(path):
        os.makedirs(parent, exist_ok=True)
        remove_abandoned_temporaries(parent)
        tmp = tempfile.mkdtemp(dir=parent, prefix=_writer_prefix())
        try:
            os.chmod(tmp, 0o777 & ~_UMASK)
            yield tmp
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _extensions(path):
    name = os.path.basename(path)
    parts = name.split(".")[1:]
    return ["." + p for p in parts[-2:]] if parts else []


_HELD = {}  # real path of a folder -> open lock file descriptor of this process


class FolderInUse(UserError):
    """Another process is writing into the folder (it holds the folder's lock)."""


def lock_directory():
    """Where the folder locks live: ``$HVITGAN_TF_LOCK_DIR``, else ``$XDG_RUNTIME_DIR`` or the
    temporary folder, under ``hvitgan-tf-locks-UID``. Outside the output folders on purpose: a
    lock file must not change what a folder holds (nor appear before a model has loaded)."""
    base = (os.environ.get("HVITGAN_TF_LOCK_DIR") or os.environ.get("XDG_RUNTIME_DIR")
            or tempfile.gettempdir())
    return os.path.join(base, f"hvitgan-tf-locks-{os.getuid()}")


def lock_folder(folder, what):
    """Make this process the only hvitgan-tf writer of ``folder`` on this machine.

    An exclusive ``flock`` on a lock file named after the folder's real path (see
    :func:`lock_directory`), held until the process ends or :func:`release_folder`: the kernel
    drops it when the process dies, kill -9 included, so no stale lock survives. A second
    process gets :class:`FolderInUse` naming the folder and the holder's pid; taking it again
    in the same process is a no-op. ``what`` ("sample", "train", "export") is what the other
    process's message calls this one. Writers on other machines of a shared file system are
    not seen.
    """
    folder = os.path.realpath(os.fspath(folder))
    if folder in _HELD:
        return
    locks = lock_directory()
    name = hashlib.sha1(folder.encode("utf-8", "surrogateescape")).hexdigest() + ".lock"
    lock_file = os.path.join(locks, name)
    with naming_disk_full(lock_file):
        os.makedirs(locks, exist_ok=True)
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode("utf-8", "replace").split("\n")[0].strip()
        os.close(fd)
        pid, _, task = holder.partition(" ")
        raise FolderInUse(f"{folder} is in use by another hvitgan-tf {task or 'command'} "
                          f"(pid {pid or 'unknown'}); wait for it to finish, or write "
                          f"somewhere else") from None
    try:
        with naming_disk_full(lock_file):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {what}\n{folder}\n".encode("utf-8", "surrogateescape"))
    except BaseException:
        os.close(fd)  # and with it the lock: this process is not writing the folder after all
        raise
    _HELD[folder] = fd


def release_folder(folder):
    """Give up this process's lock on ``folder`` (when it is done writing there)."""
    fd = _HELD.pop(os.path.realpath(os.fspath(folder)), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock
