"""``hvitgan-tf train --deterministic`` (docs/method.md §11.21): runs of the `small` model from
one seed repeat bit for bit; ``run.json`` records the runtime; a resume without the flag says
what it gives up."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.training import checkpoints

pytestmark = pytest.mark.slow


def _train(run_dir, *extra):
    command = [sys.executable, "-m", "hvitgan_tf.cli.main", "train", "--no-export",
               "--checkpoint-every", "0", "--out", str(run_dir), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _state(run_dir):
    """Every weight and optimizer variable of the last checkpoint (not the loss trackers)."""
    arrays = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset) and "metrics" not in name and "tracker" not in name:
            arrays[name] = item[()]

    with h5py.File(checkpoints.read_record(str(run_dir))["path"]) as handle:
        handle.visititems(keep)
    return arrays


def test_two_deterministic_runs_of_the_small_demo_model_are_bit_identical(tmp_path):
    # Without the flag, two such 3-iteration runs (same seed) differed in the last bits, in
    # two processes and in one (benchmarks/results/determinism-pairs.json); the tiny model of
    # the other tests never did.
    runs = [tmp_path / f"run-{k}" for k in range(2)]
    for run in runs:
        _train(run, "--deterministic", "--steps", "3")  # small on demo: the defaults
    first, second = (_state(run) for run in runs)
    assert first.keys() == second.keys() and len(first) > 100
    assert [name for name in first if not np.array_equal(first[name], second[name])] == []


def test_run_json_records_the_runtime_and_a_resume_without_the_flag_says_so(tmp_path):
    run = tmp_path / "run"
    tiny = ["--preset", "tiny", "--limit", "16", "--batch-size", "4", "--n-critic", "1"]
    _train(run, "--deterministic", *tiny, "--steps", "1")
    runtime = json.loads((run / "run.json").read_text())["runtime"]
    assert runtime["deterministic"] is True
    assert runtime["inter_op_threads"] == 1
    resumed = _train(run, "--resume", "--steps", "2")
    assert "started with --deterministic" in resumed.stderr
    runtime = json.loads((run / "run.json").read_text())["runtime"]
    assert runtime["deterministic"] is False and runtime["inter_op_threads"] != 1


def test_asking_for_determinism_after_tensorflow_started_is_a_clear_error():
    import tensorflow as tf

    from hvitgan_tf._backend import start_tensorflow

    tf.constant(1.0) + 1.0  # the runtime is up, its thread pools made
    with pytest.raises(UserError, match="before TensorFlow starts"):
        start_tensorflow(deterministic=True)
