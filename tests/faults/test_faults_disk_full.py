"""A full disk under ``train`` and ``export`` (issue 13): one line on stderr naming the file
being written and what was kept, with the command that continues; exit status 2, no
traceback; and nothing half-written under a final name (the temporaries are removed).

A test cannot fill a real disk here, so each case puts a stand-in in place of one writer: it
writes part of the file (where the writer is ours to imitate) and raises ENOSPC, in the form
that writer raises it (``OSError`` from Python and h5py, ``ResourceExhaustedError`` from
TensorFlow's event and SavedModel writers). ``sample`` on a full disk is covered in
tests/cli/test_sample_cmd.py and tests/sampling/test_sampling_writers.py.
"""
import csv
import errno
import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from fault_injection import error_line
from hvitgan_tf import fileio
from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

# Two iterations, one per epoch: the first epoch's checkpoint is kept when the second fails.
TINY = ["--preset", "tiny", "--limit", "16", "--batch-size", "4", "--n-critic", "1",
        "--diffaug", "none", "--checkpoint-every", "0", "--steps", "2", "--steps-per-epoch", "1"]


def no_space():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def tf_no_space(path):
    """TensorFlow's form of ENOSPC (its file writers map the errno to RESOURCE_EXHAUSTED)."""
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")


class HalfWritten:
    """A file handle on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[:len(data) // 2])
        self._handle.flush()
        raise no_space()

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def fill_json_writes(monkeypatch, folder, nth):
    """The ``nth`` JSON file written into ``folder`` (through ``fileio``) hits a full disk."""
    opened = []

    def filling_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        path = os.fspath(path)
        if "w" in mode and path.endswith(".json") and os.path.dirname(path) == str(folder):
            opened.append(path)
            if len(opened) == nth:
                return HalfWritten(handle)
        return handle

    monkeypatch.setattr(fileio, "open", filling_open, raising=False)


def fill_checkpoint(monkeypatch, nth):
    """The ``nth`` checkpoint written is cut short (h5py raises OSError with errno 28)."""
    from hvitgan_tf.training.gan import HViTGAN

    real = HViTGAN.save_weights
    calls = []

    def save_weights(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == nth:
            with open(path, "wb") as handle:
                handle.write(b"\x89HDF\r\n\x1a\n" + bytes(96))  # an HDF5 file cut short
            raise no_space()
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(HViTGAN, "save_weights", save_weights)


def fill_png(monkeypatch, folder):
    """PNGs saved into ``folder`` (the sample grids) hit a full disk half-way."""
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if isinstance(fp, (str, os.PathLike)) and os.path.dirname(os.fspath(fp)) == str(folder):
            with open(fp, "wb") as handle:
                handle.write(b"\x89PNG\r\n\x1a\n")
            raise no_space()
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def fill_summaries(monkeypatch, run, kind):
    """TensorBoard's ``kind`` summaries (scalar: the losses of an epoch; image: the sample
    grid) cannot be written: TensorFlow's event writer reports ENOSPC. (Keras also calls
    ``scalar`` after every batch, but records only the epoch's with ``update_freq="epoch"``.)"""
    import tensorflow as tf

    real = getattr(tf.summary, kind)

    def write(name, *args, **kwargs):
        if kind == "scalar" and not name.startswith("epoch_"):
            return real(name, *args, **kwargs)
        raise tf_no_space(run / "logs" / "events.out.tfevents.1.host.1.0.v2")

    monkeypatch.setattr(tf.summary, kind, write)


def fill_metrics_csv(monkeypatch):
    """Keras's CSVLogger cannot write its first line (the header)."""
    def writerow(self, row):
        raise no_space()

    monkeypatch.setattr(csv.DictWriter, "writerow", writerow)


def assert_nothing_half_written(folder):
    """No temporary left, and every file written whole: JSON parses, checkpoints and PNGs read
    back. (``metrics.csv`` and TensorBoard's event files are logs appended in place.)"""
    from hvitgan_tf.training import checkpoints

    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            assert not name.startswith(".tmp-"), os.path.join(root, name)
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".json"):
                with open(path, encoding="utf-8") as handle:
                    json.load(handle)
            elif name.endswith(".weights.h5"):
                assert checkpoints.damage(path) is None, path
            elif name.endswith(".png"):
                with Image.open(path) as image:
                    image.load()


def train(run, *extra):
    return CliRunner().invoke(cli, ["train", *TINY, "--out", str(run), *extra])


def resume_advice(run, iteration):
    return (f"kept {run}/checkpoints/iter-{iteration:08d}.weights.h5 (iteration {iteration}); "
            f"free some space, then continue with: hvitgan-tf train --out {run} --resume")


# Which writer fails, and what the line then names: (case, file written, what was kept).
TRAIN_CASES = {
    "checkpoint": ("checkpoints/iter-00000002.weights.h5", 1),
    "last.json": ("checkpoints/last.json", 1),
    "run.json": ("run.json", None),
    "metrics.csv": ("metrics.csv", 1),
    "tensorboard scalars": ("logs", 1),
    "tensorboard sample grid": ("logs/samples", 1),
    "sample grid png": ("samples/epoch_0001.png", 1),
}


#: Logs appended in place rather than written whole (an event file is made when its writer
#: starts; metrics.csv when training starts).
APPENDED = ("logs", "logs/samples", "metrics.csv")


def fill(case, monkeypatch, run):
    if case == "checkpoint":
        fill_checkpoint(monkeypatch, nth=2)
    elif case == "last.json":
        fill_json_writes(monkeypatch, run / "checkpoints", nth=2)
    elif case == "run.json":
        fill_json_writes(monkeypatch, run, nth=1)
    elif case == "metrics.csv":
        fill_metrics_csv(monkeypatch)
    elif case == "tensorboard scalars":
        fill_summaries(monkeypatch, run, "scalar")
    elif case == "tensorboard sample grid":
        fill_summaries(monkeypatch, run, "image")
    elif case == "sample grid png":
        fill_png(monkeypatch, run / "samples")
    else:
        raise ValueError(case)


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_on_a_full_disk_names_the_file_and_the_checkpoint_kept(tmp_path, monkeypatch,
                                                                     lock_dir, case):
    run = tmp_path / "run"
    written, kept = TRAIN_CASES[case]
    fill(case, monkeypatch, run)
    result = train(run, "--no-export")
    monkeypatch.undo()

    line = error_line(result)
    advice = (resume_advice(run, kept) if kept else
              "no checkpoint had been written yet; free some space and run the same command "
              "again")
    assert line == f"Error: no space left on device writing {run / written}: {advice}"
    assert line in result.stderr.splitlines()
    assert_nothing_half_written(run)
    if case == "last.json":  # still the pointer to the checkpoint kept
        record = json.loads((run / "checkpoints" / "last.json").read_text())
        assert record["iteration"] == 1
    elif written not in APPENDED:
        assert not (run / written).exists()


def test_the_command_a_full_disk_gives_continues_the_run(tmp_path, monkeypatch, lock_dir):
    """The resume line's command works; and a metrics.csv row the full disk cut short (a real
    one can: the row is appended in place) is dropped, not continued by the next row."""
    run = tmp_path / "run"
    fill_checkpoint(monkeypatch, nth=2)
    assert train(run, "--no-export").exit_code == 2
    monkeypatch.undo()
    with open(run / "metrics.csv", "a", encoding="utf-8") as handle:
        handle.write("1,0.2")  # the start of epoch 2's row
    resumed = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming from iteration 1" in resumed.output
    assert "trained 2 iterations" in resumed.output
    assert_nothing_half_written(run)
    with open(run / "metrics.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert [len(row) for row in rows] == [len(rows[0])] * 3  # header, epoch 1, epoch 2
    assert [row[0] for row in rows[1:]] == ["0", "1"]


def test_a_checkpoint_is_not_started_without_room_for_it(tmp_path, monkeypatch, lock_dir):
    """HDF5 does not fail cleanly on a real full disk (measured on a 2 MB tmpfs: an error for
    every object it frees, then a segmentation fault), so the free space is checked first."""
    import collections
    import shutil

    from hvitgan_tf.training.gan import HViTGAN

    run = tmp_path / "run"
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 1 << 20))
    started = []
    monkeypatch.setattr(HViTGAN, "save_weights", lambda self, path: started.append(path))
    result = train(run, "--no-export")
    monkeypatch.undo()

    assert error_line(result) == (
        f"Error: no space left on device writing {run}/checkpoints/iter-00000001.weights.h5: "
        "no checkpoint had been written yet; free some space and run the same command again")
    assert started == []
    assert_nothing_half_written(run)


def test_tensorflow_out_of_memory_is_not_a_full_disk():
    """TensorFlow raises ResourceExhaustedError for both; only the message tells them apart."""
    import tensorflow as tf

    assert fileio.is_disk_full(tf_no_space("/x/events.out.tfevents"))
    assert fileio.is_disk_full(no_space())
    assert not fileio.is_disk_full(tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[4096,4096]"))
    assert not fileio.is_disk_full(OSError(errno.EACCES, "Permission denied"))


def fill_export(monkeypatch, where):
    """The export's last file (``class_names.txt``, written by Python) or the SavedModel itself
    (TensorFlow's writer, once it has written every file) hits a full disk."""
    from hvitgan_tf.export import savedmodel

    if where == "class names":
        def write_class_names(folder, class_names):
            with open(os.path.join(folder, "class_names.txt"), "w") as handle:
                handle.write(class_names[0][:2])
            raise no_space()

        monkeypatch.setattr(savedmodel, "write_class_names", write_class_names)
    else:
        import tensorflow as tf

        real = tf.saved_model.save

        def save(obj, folder, *args, **kwargs):
            real(obj, folder, *args, **kwargs)
            raise tf_no_space(os.path.join(folder, "variables", "variables.data-00000-of-00001"))

        monkeypatch.setattr(tf.saved_model, "save", save)


@pytest.mark.parametrize("where", ["class names", "saved model"])
def test_export_on_a_full_disk_keeps_no_partial_version(tiny_run_dir, tmp_path, monkeypatch,
                                                        lock_dir, where):
    models = tmp_path / "models"
    (models / "hvitgan").mkdir(parents=True)
    fill_export(monkeypatch, where)
    result = CliRunner().invoke(cli, ["export", tiny_run_dir, "--export-dir", str(models)])
    monkeypatch.undo()

    base = models / "hvitgan"
    line = error_line(result)
    assert line == (f"Error: no space left on device writing {base / '1'}: nothing of version 1 "
                    f"was kept, and the versions already in {base} are as they were; free some "
                    "space and run the same command again")
    assert line in result.stderr.splitlines()
    assert os.listdir(base) == []  # neither the version nor its temporary folder


def test_export_at_the_end_of_training_on_a_full_disk_says_how_to_export_later(
        tmp_path, monkeypatch, lock_dir):
    run, models = tmp_path / "run", tmp_path / "models"
    fill_export(monkeypatch, "class names")
    result = train(run, "--export-dir", str(models), "--name", "demo")
    monkeypatch.undo()

    base = models / "demo"
    line = error_line(result)
    assert line == (
        f"Error: no space left on device writing {base / '1'}: nothing of version 1 was kept, "
        f"and the versions already in {base} are as they were; training finished and kept "
        f"{run}/checkpoints/iter-00000002.weights.h5 (iteration 2); free some space, then "
        f"export it with: hvitgan-tf export {run} --export-dir {models} --name demo")
    assert os.listdir(base) == []
    assert_nothing_half_written(run)
