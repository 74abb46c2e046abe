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
