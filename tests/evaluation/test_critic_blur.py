"""benchmarks/critic_blur.py: does the critic notice blur (docs/method.md §11.22)."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from hvitgan_tf.data import open_source
from hvitgan_tf.evaluation.learning import detail, real_arrays

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "critic_blur.py"


def _benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("critic_blur_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ScoringCritic:
    """Stands in for a discriminator: the source score is ``sign`` times each image's detail."""

    def __init__(self, sign):
        self.sign = sign

    def __call__(self, images, training=False):
        images = np.asarray(images)
        scores = np.array([[self.sign * detail(image[None])] for image in images], np.float32)
        return tf.constant(scores), tf.zeros([len(images), 2])


def test_the_gap_is_positive_for_a_critic_that_prefers_sharp_patches_and_negative_otherwise():
    benchmark = _benchmark()
    images, labels = real_arrays(open_source("demo", limit=64, seed=0), "validation", 32)
    images, labels = images[:24], labels[:24]
    for sign, ranked in ((1.0, 1.0), (-1.0, 0.0)):
        gan = SimpleNamespace(discriminator=_ScoringCritic(sign),
                              train_config=SimpleNamespace(critic_projection=False))
        record = benchmark.gap_record(gan, images, labels, sigma=1.0)
        assert record["ranked"] == ranked
        assert sign * record["gap"] > 0


def test_critic_alone_compares_policies_in_one_run():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--steps", "2", "--every", "2",
         "--policies", "none; color", "--set", "batch_size=4"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    steps = [(r["policy"], r["step"]) for r in lines if "policy" in r]
    assert steps == [("none", 0), ("none", 2), ("color", 0), ("color", 2)]
    summary = lines[-1]["summary"]
    assert set(summary) == {"none", "color"}
    for values in summary.values():
        assert 0.0 <= values["ranked"] <= 1.0 and math.isfinite(values["gap"])


def test_a_trained_runs_critic_scores_reals_blurs_and_both_generators(tiny_run_dir):
    result = subprocess.run([sys.executable, str(SCRIPT), "--run", tiny_run_dir],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["checkpoint"].startswith("iter-")
    for name in ("real", "blurred_0.5", "blurred_1.0", "blurred_1.5", "ema_samples",
                 "live_samples"):
        assert math.isfinite(record[name])


def test_critic_alone_can_mix_blurred_patches_with_a_trained_generators_samples(tiny_run_dir):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--preset", "tiny", "--steps", "2", "--every", "2",
         "--policies", "translation", "--set", "batch_size=4", "--blur-share", "0.5",
         "--fakes-from", tiny_run_dir],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["blur_share"] == 0.5 and last["fakes_from"] == tiny_run_dir
    assert 0.0 <= last["summary"]["translation"]["ranked"] <= 1.0


def test_a_share_of_generated_fakes_needs_a_run_to_make_them():
    result = subprocess.run([sys.executable, str(SCRIPT), "--blur-share", "0.5"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2
    assert "--blur-share below 1 needs --fakes-from RUN" in result.stderr
