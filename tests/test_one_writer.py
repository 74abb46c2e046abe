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
