"""One writer per output folder: a second process is refused with the holder's pid, and a
killed holder never leaves the folder locked."""
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from hvitgan_tf import fileio
from hvitgan_tf.cli.main import cli

HOLDER = """
import sys, time
from hvitgan_tf.fileio import lock_folder
lock_folder(sys.argv[1], sys.argv[2])
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    locks = tmp_path / "locks"
    monkeypatch.setenv("HVITGAN_TF_LOCK_DIR", str(locks))
    return locks


@pytest.fixture
def holder(lock_dir):
    """Start a process that holds the lock of a folder: ``holder(folder, what) -> Popen``."""
    started = []

    def start(folder, what):
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), what],
                                   stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "HVITGAN_TF_LOCK_DIR": str(lock_dir)})
        started.append(process)
        assert process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_frees_it(
        tmp_path, holder):
    folder = tmp_path / "synthetic"
    process = holder(folder, "sample")
    with pytest.raises(fileio.FolderInUse) as refused:
        fileio.lock_folder(folder, "sample")
    message = str(refused.value)
    assert str(folder) in message and f"pid {process.pid}" in message and "sample" in message
    assert not folder.exists()  # the lock lives outside the folder

    process.send_signal(signal.SIGKILL)
    process.wait()
    fileio.lock_folder(folder, "sample")  # kill -9 left nothing locked
    fileio.lock_folder(folder, "sample")  # and the same process may take it again
    fileio.release_folder(folder)


def test_the_same_folder_through_another_path_is_the_same_lock(tmp_path, holder):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    holder(real, "train")
    with pytest.raises(fileio.FolderInUse, match="another hvitgan-tf train"):
        fileio.lock_folder(tmp_path / "link" / ".." / "real", "train")


def test_sample_into_a_folder_being_written_is_refused_before_anything_is_written(
        tiny_saved_model, tmp_path, holder):
    out = tmp_path / "out"
    process = holder(out, "sample")
    result = CliRunner().invoke(cli, ["sample", "--model", tiny_saved_model[0], "--out",
                                      str(out), "--per-class", "2", "--threshold", "0"])
    assert result.exit_code == 2, result.output
    assert f"is in use by another hvitgan-tf sample (pid {process.pid})" in result.output
    assert not out.exists()


def test_train_into_a_run_folder_being_trained_is_refused(tmp_path, holder):
    run = tmp_path / "run"
    process = holder(run, "train")
    result = CliRunner().invoke(cli, ["train", "--preset", "tiny", "--limit", "16", "--steps",
                                      "1", "--no-export", "--out", str(run)])
    assert result.exit_code == 2, result.output
    assert f"in use by another hvitgan-tf train (pid {process.pid})" in result.output
    assert not (run / "run.json").exists()


def test_export_into_a_model_name_being_exported_is_refused(tiny_run_dir, tmp_path, holder):
    base = tmp_path / "models"
    process = holder(base / "hvitgan", "export")
    result = CliRunner().invoke(cli, ["export", tiny_run_dir, "--export-dir", str(base)])
    assert result.exit_code == 2, result.output
    assert f"in use by another hvitgan-tf export (pid {process.pid})" in result.output
    assert not (base / "hvitgan" / "1").exists()


WRITER = """
import os, sys, time
from hvitgan_tf.fileio import atomic_directory
with atomic_directory(sys.argv[1]) as tmp:
    open(os.path.join(tmp, "part"), "w").close()
    print(os.path.basename(tmp), flush=True)
    time.sleep(600)
"""


def test_a_killed_writers_temporary_folder_is_removed_and_a_live_ones_is_kept(tmp_path):
    """``atomic_directory`` names its temporary folder after host and pid; the next one in the
    same parent removes those of dead writers only."""
    parent = tmp_path / "hvitgan"

    def writer():
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(parent / "1")],
                                   stdout=subprocess.PIPE, text=True)
        return process, parent / process.stdout.readline().strip()

    dead, dead_tmp = writer()
    live, live_tmp = writer()
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        assert str(dead.pid) in dead_tmp.name and (dead_tmp / "part").exists()
        # Not ours to judge: another machine's (its pid means nothing here), a folder without
        # a recorded writer, a classifier export's previous version moved aside.
        others = [parent / f".tmp-elsewhere-{dead.pid}-abc123", parent / ".tmp-abc123",
                  parent / f"{dead_tmp.name}.old"]
        for folder in others:
            folder.mkdir()

        with fileio.atomic_directory(parent / "2") as tmp:
            assert f"-{os.getpid()}-" in os.path.basename(tmp)
        assert not dead_tmp.exists()
        assert (live_tmp / "part").exists()
        assert all(folder.exists() for folder in others)
        assert (parent / "2").is_dir()
    finally:
        live.kill()
        live.wait()
    fileio.remove_abandoned_temporaries(parent)
    assert not live_tmp.exists()


# -- temporaries without a recorded writer, and temporary files ------------------------------

A_DAY = 24 * 3600


def age(path, seconds):
    """Set back the modification time of ``path`` and of everything under it."""
    then = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (then, then))
    os.utime(path, (then, then))


def dead_pid():
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def partial_saved_model(folder):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    (folder / "variables" / "variables.index").write_bytes(b"")
    return folder


def test_an_old_unnamed_temporary_export_is_removed_once_it_is_a_day_old(tmp_path):
    """Before temporary folders carried host and pid, a killed export left ``.tmp-XXXXXXXX``
    (tempfile's 8 characters) for ever. The next export removes such a folder when nothing in
    it has changed for a day and it holds only the parts of a SavedModel; a fresh one (its
    writer may be an older hvitgan-tf still running) and one holding anything else stay."""
    parent = tmp_path / "hvitgan"
    stale = partial_saved_model(parent / ".tmp-k3j2h1g0")
    age(stale, 2 * A_DAY)
    empty = parent / ".tmp-q9w8e7r6"  # killed right after mkdtemp
    empty.mkdir()
    age(empty, 2 * A_DAY)
    fresh = partial_saved_model(parent / ".tmp-a1s2d3f4")
    foreign = partial_saved_model(parent / ".tmp-z0x9c8v7")
    (foreign / "notes.txt").write_text("not a part of a SavedModel\n")
    age(foreign, 2 * A_DAY)
    not_tempfiles = parent / ".tmp-abc123"  # not tempfile's form
    not_tempfiles.mkdir()
    age(not_tempfiles, 2 * A_DAY)

    with fileio.atomic_directory(parent / "1"):
        pass
    assert not stale.exists() and not empty.exists()
    assert fresh.exists() and foreign.exists() and not_tempfiles.exists()


def test_temporary_files_name_their_writer_and_a_dead_ones_are_removed(tmp_path):
    """``atomic_path``'s temporary files say which process writes them, like the folders; a
    dead writer's, and an unnamed one untouched for a day, are removed; a live one's stays."""
    with fileio.atomic_path(tmp_path / "run.json") as tmp:
        assert os.path.basename(tmp).startswith(f".tmp-{fileio._host()}-{os.getpid()}-")
        assert os.path.dirname(tmp) == str(tmp_path)
    dead = tmp_path / f".tmp-{fileio._host()}-{dead_pid()}-ab12cd34.json"
    dead_png = tmp_path / f".tmp-{fileio._host()}-{dead_pid()}-ef56gh78.png"
    live = tmp_path / f".tmp-{fileio._host()}-{os.getppid()}-ij90kl12.json"
    unnamed_stale = tmp_path / ".tmp-mn34op56.weights.h5"
    unnamed_fresh = tmp_path / ".tmp-qr78st90.json"
    unknown_kind = tmp_path / ".tmp-uv12wx34.sqlite"
    for path in (dead, dead_png, live, unnamed_stale, unnamed_fresh, unknown_kind):
        path.write_bytes(b"partial")
    age(unnamed_stale, 2 * A_DAY)
    age(unknown_kind, 2 * A_DAY)

    removed = fileio.remove_abandoned_temporaries(tmp_path)
    assert sorted(removed) == sorted(map(str, (dead, dead_png, unnamed_stale)))
    assert live.exists() and unnamed_fresh.exists() and unknown_kind.exists()


def test_train_removes_the_temporaries_a_killed_trainer_left(tiny_run_dir, tmp_path):
    """``run.json`` and the sample grids are written beside their final names; a trainer
    killed while writing one leaves its temporary file in RUN or RUN/samples, which nothing
    else cleans (checkpoints/ is cleaned at every save)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    left = [run / f".tmp-{fileio._host()}-{dead_pid()}-ab12cd34.json",
            run / "samples" / f".tmp-{fileio._host()}-{dead_pid()}-ef56gh78.png",
            run / "samples" / ".tmp-yz12ab34.png"]
    for path in left:
        path.write_bytes(b"partial")
    age(left[-1], 2 * A_DAY)
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--no-export"])
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in left)
