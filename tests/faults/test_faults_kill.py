"""``kill -9`` of ``sample`` and ``export`` at seeded random points, then the same command again:
the result is the uninterrupted run's (issue 13). While each victim runs it is paused
(SIGSTOP) and a second writer into its folder is refused with one line naming the folder and
the victim's pid.

``train`` is covered elsewhere: tests/training/test_kill_resume.py kills it mid-epoch and
resumes, and tests/training/test_runner.py shows a resumed run ends in exactly the
uninterrupted state.
"""
import csv
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from fault_injection import error_line, snapshot
from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 3
PER_CLASS = 8


def start(args):
    """The CLI in a subprocess of its own (the folder locks of this test: ``lock_dir``)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-m", "hvitgan_tf.cli.main", *args], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, victim, timeout=300):
    """Poll ``condition()`` every millisecond; False when the victim ended first."""
    deadline = time.time() + timeout
    while not condition():
        if victim.poll() is not None:
            return False
        assert time.time() < deadline, "the victim made no progress"
        time.sleep(0.001)
    return True


def refused(line, folder, what, victim):
    return (f"{os.path.realpath(folder)} is in use by another hvitgan-tf {what} "
            f"(pid {victim.pid})") in line


# -- sample ------------------------------------------------------------------------------------

def sample_args(model, out, threshold):
    return ["sample", "--model", str(model), "--out", str(out), "--per-class", str(PER_CLASS),
            "--threshold", repr(threshold), "--batch-size", "1", "--seed", str(SEED), "--quiet"]


def manifest(out):
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def threshold(tiny_saved_model, tmp_path_factory, reuse_loaded_models):
    """The median confidence of the less confident class over its first attempts: that class
    keeps about half of its attempts (the killed runs resume after rejected ones too)."""
    out = tmp_path_factory.mktemp("calibration") / "all"
    args = sample_args(tiny_saved_model[0], out, 0.0)
    args[args.index("--per-class") + 1] = str(2 * PER_CLASS)
    assert CliRunner().invoke(cli, args).exit_code == 0
    confidences = {}
    for row in manifest(out):
        confidences.setdefault(row["label"], []).append(float(row["confidence"]))
    return min(float(np.median(values)) for values in confidences.values())


@pytest.fixture(scope="module")
def uninterrupted(tiny_saved_model, threshold, tmp_path_factory, reuse_loaded_models):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    result = CliRunner().invoke(cli, sample_args(tiny_saved_model[0], out, threshold))
    assert result.exit_code == 0, result.output
    return out


def result_of(out):
    """PNG bytes, manifest rows (in id order: a resumed run appends them in other batches)
    and the committed counters."""
    files = snapshot(out)
    state = json.loads(files.pop("sampling.json"))
    state.pop("updated_at")
    files.pop("manifest.csv")
    return files, state, sorted(manifest(out), key=lambda row: row["id"])


def pngs(out):
    """The PNGs in OUT, written or being written (under their temporary names)."""
    return glob.glob(os.path.join(out, "*", "*.png")) + glob.glob(os.path.join(out, "*", ".tmp-*"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_killed_at_a_random_point_then_rerun_gives_the_uninterrupted_folder(
        tiny_saved_model, threshold, uninterrupted, tmp_path, lock_dir, reuse_loaded_models,
        capsys, seed):
    from pipelines import beam_sample

    rng = random.Random(seed)
    # -1: while the folder is being opened; k: once k PNGs (or their temporaries) exist.
    kill_after, pause = rng.randint(-1, 2 * PER_CLASS - 2), rng.uniform(0, 0.005)
    out = tmp_path / "out"
    args = sample_args(tiny_saved_model[0], out, threshold)
    victim = start(args)
    try:
        assert wait_for(out.exists, victim), victim.stderr.read()[-2000:]
        victim.send_signal(signal.SIGSTOP)  # it holds OUT: a second writer must be refused
        before = snapshot(out)
        assert refused(error_line(CliRunner().invoke(cli, args)), out, "sample", victim)
        with pytest.raises(SystemExit) as beam_exit:
            beam_sample.main(["--model", tiny_saved_model[0], "--out", str(out),
                              "--per-class", str(PER_CLASS), "--threshold", repr(threshold),
                              "--seed", str(SEED)])
        assert beam_exit.value.code == 2
        assert refused(capsys.readouterr().err, out, "sample", victim)
        assert snapshot(out) == before
        victim.send_signal(signal.SIGCONT)

        assert wait_for(lambda: len(pngs(out)) > kill_after, victim), victim.stderr.read()
        time.sleep(pause)
        kill(victim)
    finally:
        kill(victim)
    assert victim.returncode == -signal.SIGKILL
    for row in manifest(out):  # the killed run's manifest names only complete files
        assert os.path.getsize(out / row["file"]) > 0

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert result_of(out) == result_of(uninterrupted)


def kill(victim):
    """SIGKILL the subprocess unless it has already ended, and reap it."""
    if victim.poll() is None:
        victim.send_signal(signal.SIGKILL)
    victim.wait()


# -- export ------------------------------------------------------------------------------------

def holds_lock(victim, lock_dir):
    """The victim has taken a folder lock (a lock file names the holder's pid)."""
    for path in glob.glob(os.path.join(lock_dir, "*", "*.lock")):
        with open(path) as handle:
            if handle.read().startswith(f"{victim.pid} "):
                return True
    return False


def entries(folder):
    return sum(len(dirs) + len(files) for _, dirs, files in os.walk(folder))


def generated(version_dir):
    import tensorflow as tf

    model = tf.saved_model.load(str(version_dir))
    outputs = model.signatures["generate"](
        label=tf.constant([0, 1, 0, 1], tf.int32), seed=tf.constant([0, 1, 2, 3], tf.int64),
        truncation=tf.constant([1.0, 1.0, 0.5, 0.5], tf.float32))
    return {key: value.numpy() for key, value in outputs.items()}


def test_export_killed_at_random_points_then_rerun_gives_the_uninterrupted_model(
        tiny_run_dir, tiny_saved_model, tmp_path, lock_dir):
    """Two exports into one model folder, each killed at a seeded point of writing the version
    (after k of its files exist, or once renamed), then the same command to the end: every
    version on disk is complete and generates what the uninterrupted export generates, and
    the killed exports' temporary folders are gone."""
    base = tmp_path / "models"
    args = ["export", tiny_run_dir, "--export-dir", str(base)]
    for seed in (0, 1):
        kill_after = random.Random(seed).randint(0, 9)  # a finished version has 9 entries
        versions_before = len(glob.glob(str(base / "hvitgan" / "[0-9]*")))
        left_before = set(glob.glob(str(base / "hvitgan" / ".tmp-*")))  # by a killed export
        victim = start(args)
        try:
            assert wait_for(lambda: holds_lock(victim, lock_dir), victim), victim.stderr.read()
            victim.send_signal(signal.SIGSTOP)
            before = snapshot(base)
            assert refused(error_line(CliRunner().invoke(cli, args)), base / "hvitgan",
                           "export", victim)
            assert snapshot(base) == before
            victim.send_signal(signal.SIGCONT)

            def at_kill_point():
                temporary = set(glob.glob(str(base / "hvitgan" / ".tmp-*"))) - left_before
                versions_now = glob.glob(str(base / "hvitgan" / "[0-9]*"))
                return (len(versions_now) > versions_before  # renamed, not yet exited
                        or any(entries(path) >= kill_after for path in temporary))

            wait_for(at_kill_point, victim)
            kill(victim)
        finally:
            kill(victim)

    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    versions = sorted(int(name) for name in os.listdir(base / "hvitgan") if name.isdigit())
    assert f"saved model:  {base / 'hvitgan' / str(versions[-1])}" in result.output
    reference = generated(tiny_saved_model[1])
    for version in versions:
        outputs = generated(base / "hvitgan" / str(version))
        for key in ("images", "probabilities", "confidence"):
            np.testing.assert_array_equal(outputs[key], reference[key])
    # The killed exports' temporary folders are gone: their writers are dead.
    assert glob.glob(str(base / "hvitgan" / ".tmp-*")) == []
