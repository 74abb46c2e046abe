"""``hvitgan_tf.sampling.sample`` end to end on the tiny export (docs/method.md §6).

The tiny model is trained for 4 iterations, so its class head is far from confident: the tests
choose their thresholds from the model's own confidence distribution where they need real
selection (some attempts kept, some rejected). ``--threshold 0.8`` itself is exercised by the
CLI tests (tests/cli/test_sample_cmd.py on this model: the clear "cannot reach quota" exit;
tests/cli/test_export_cmd.py on a sharpened export: success).
"""
import ast
import csv
import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from hvitgan_tf import imaging
from hvitgan_tf.sampling import ExportedModel, sample
from hvitgan_tf.sampling.report import kept_vs_rejected_grid, preview_kept_vs_rejected
from hvitgan_tf.sampling.seeds import attempt_seed, attempt_seeds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_saved_model):
    return ExportedModel(tiny_saved_model[1])


@pytest.fixture(scope="module")
def selective(model):
    """``(label, threshold)``: the class with the most confident head and a threshold at its
    median confidence over its first 64 attempts, so about half of them pass."""
    medians = []
    for label in range(len(model.class_names)):
        out = model.generate(np.full(64, label), attempt_seeds(0, label, np.arange(64)))
        medians.append(float(np.median(out["confidence"])))
    label = int(np.argmax(medians))
    return label, medians[label]


def manifest(out):
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def read_records(out):
    import tensorflow as tf

    from hvitgan_tf.data.tfrecord import CONFIDENCE_KEY, IMAGE_KEY, LABEL_KEY

    records = {}
    for path in sorted(glob.glob(os.path.join(out, "*.tfrecord"))):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            feature = example.features.feature
            image = feature[IMAGE_KEY].bytes_list.value[0]
            records[image] = (feature[LABEL_KEY].int64_list.value[0],
                              feature[CONFIDENCE_KEY].float_list.value[0])
    return records


def folder_bytes(out):
    return {os.path.relpath(p, out): open(p, "rb").read()
            for p in glob.glob(os.path.join(out, "*", "*.png"))}


def test_kept_images_pass_the_threshold_and_their_confidence_is_what_classify_says(
        model, selective, tmp_path):
    label, threshold = selective
    name = model.class_names[label]
    out = str(tmp_path / "out")
    report = sample(None, out, per_class=12, classes=[name], threshold=threshold, batch_size=5,
                    formats=("png", "tfrecord"), model=model, progress=False)
    assert report.complete and report.resumed is False
    entry, = report.classes
    assert entry.kept == 12 and entry.attempts > 12  # some were rejected
    assert 0 < entry.acceptance < 1
    rows = manifest(out)
    assert len(rows) == 12 and {row["class"] for row in rows} == {name}
    confidences = np.array([float(row["confidence"]) for row in rows])
    assert confidences.min() >= threshold
    images = np.stack([np.asarray(Image.open(os.path.join(out, row["file"])))
                       for row in rows])
    classified = model.classify(images)["probabilities"][:, label]
    np.testing.assert_allclose(classified, confidences, rtol=0, atol=1e-6)
    # The manifest says how to regenerate each image: its seed is attempt_seed(run, class,
    # attempt), and generate(label, seed, psi) returns the same pixels and confidence.
    attempts = [int(row["attempt"]) for row in rows]
    assert [int(row["seed"]) for row in rows] == [attempt_seed(0, label, a) for a in attempts]
    again = model.generate(np.full(12, label), [int(row["seed"]) for row in rows], 1.0)
    np.testing.assert_array_equal(again["images"], images)
    # Kept = the first 12 attempts (in attempt order) at or above the threshold.
    all_conf = model.generate(np.full(entry.attempts, label),
                              attempt_seeds(0, label, np.arange(entry.attempts)))["confidence"]
    assert attempts == np.flatnonzero(all_conf >= threshold).tolist()
    # TFRecords hold the same PNG bytes, labels and confidences.
    records = read_records(out)
    assert len(records) == 12
    for row, image in zip(rows, images):
        png = open(os.path.join(out, row["file"]), "rb").read()
        assert records[png] == (label, pytest.approx(float(row["confidence"]), abs=1e-7))
    assert report.generated_per_second > 0 and report.written_per_second > 0


def test_same_seed_gives_byte_identical_output_whatever_the_batch_size(model, tmp_path):
    runs = {}
    for batch_size in (64, 7):
        out = str(tmp_path / f"b{batch_size}")
        sample(None, out, per_class=9, threshold=0.0, batch_size=batch_size, seed=5,
               formats=("png", "tfrecord"), model=model, progress=False)
        runs[batch_size] = out
    first, second = (folder_bytes(runs[b]) for b in (64, 7))
    assert len(first) == 18 and first == second
    assert sorted(read_records(runs[64]).items()) == sorted(read_records(runs[7]).items())
    strip = [{k: v for k, v in row.items() if k != "tfrecord"} for row in manifest(runs[64])]
    assert sorted(strip, key=str) == sorted(
        ({k: v for k, v in row.items() if k != "tfrecord"} for row in manifest(runs[7])),
        key=str)
    other = str(tmp_path / "seed6")
    sample(None, other, per_class=9, threshold=0.0, seed=6, model=model, progress=False)
    assert set(folder_bytes(other).values()).isdisjoint(first.values())


def test_a_rerun_resumes_and_a_finished_folder_generates_nothing(model, selective, tmp_path):
    label, threshold = selective
    settings = dict(threshold=threshold, formats=("png", "tfrecord"), model=model,
                    progress=False, shard_size=4)
    one_shot = str(tmp_path / "one-shot")
    sample(None, one_shot, per_class=10, **settings)
    steps = str(tmp_path / "steps")
    first = sample(None, steps, per_class=4, batch_size=3, **settings)
    second = sample(None, steps, per_class=10, batch_size=11, **settings)
    assert second.resumed
    for entry in second.classes:
        before = first.classes[entry.label]
        # The second run only added what was missing, continuing after the attempts made.
        assert entry.kept_this_run == entry.kept - before.kept
    assert folder_bytes(steps) == folder_bytes(one_shot)
    assert read_records(steps) == read_records(one_shot)
    rerun = sample(None, steps, per_class=10, **settings)
    assert rerun.generated == 0 and rerun.written == 0
    assert [(c.kept, c.attempts) for c in rerun.classes] == \
        [(c.kept, c.attempts) for c in second.classes]
    assert len(manifest(steps)) == sum(c.kept for c in second.classes)


def test_reading_the_output_back_as_folder_and_tfrecord_data(model, tmp_path):
    from hvitgan_tf.data import open_source

    out = str(tmp_path / "out")
    sample(None, out, per_class=5, threshold=0.0, formats=("png", "tfrecord"), model=model,
           progress=False)
    written = {row["file"]: row for row in manifest(out)}
    for spec in (f"folder:{out}", f"tfrecord:{out}/*.tfrecord"):
        source = open_source(spec, split_fractions=(1.0, 0.0, 0.0))
        assert list(source.class_names) == model.class_names, spec
        assert source.class_counts("train") == [5, 5], spec
        found = {}
        for image, label in source.raw_examples("train").as_numpy_iterator():
            found.setdefault(int(label), []).append(imaging.encode_png(image))
        for file, row in written.items():
            png = imaging.encode_png(np.asarray(Image.open(os.path.join(out, file))))
            assert png in found[int(row["label"])], (spec, file)


def test_a_class_that_cannot_be_filled_is_reported(model, tmp_path):
    report = sample(None, str(tmp_path / "out"), per_class=3, threshold=0.999, max_attempts=10,
                    model=model, progress=False)
    assert not report.complete
    for entry in report.classes:
        assert (entry.kept, entry.attempts, entry.generated) == (0, 10, 10)
    assert report.shortfall_message() == (
        "class dab_negative: 0/3 kept after 10 attempts (acceptance 0.0 %); class "
        "dab_positive: 0/3 kept after 10 attempts (acceptance 0.0 %); lower --threshold or "
        "train longer")


def test_kept_vs_rejected_grid(model, selective, tmp_path):
    label, threshold = selective
    path = preview_kept_vs_rejected(model, str(tmp_path / "grid.png"), threshold=threshold,
                                    attempts=16, per_row=4)
    grid = np.asarray(Image.open(path))
    assert grid.ndim == 3 and grid.shape[2] == 3
    # Two rows per class of 64 px cells (16 px patches scaled x4) under a title line.
    assert grid.shape[0] == 18 + 2 * len(model.class_names) * (64 + 2) + 2
    images = np.zeros((3, 16, 16, 3), np.uint8)
    small = kept_vs_rejected_grid([("a", images, [0.9, 0.1, 0.95], [True, False, True])], 0.8,
                                  per_row=1)
    assert small.shape[0] == 2 * (64 + 2) + 2


# The interrupted run below: the CLI in a fresh interpreter, plus a thread that reports which
# hvitgan_tf modules are loaded once images are being written. Sampling must not have loaded the
# model classes (STYLE: it works from the SavedModel alone).
VICTIM = textwrap.dedent("""
    import os, sys, threading, time
    from hvitgan_tf.cli.main import main

    def report():
        manifest = os.path.join(sys.argv[sys.argv.index("--out") + 1], "manifest.csv")
        while not (os.path.exists(manifest) and len(open(manifest).readlines()) > 1):
            time.sleep(0.01)
        print(sorted(m for m in sys.modules if m.startswith("hvitgan_tf.")), flush=True)

    threading.Thread(target=report, daemon=True).start()
    main(sys.argv[1:])
""")


def test_a_killed_run_leaves_a_consistent_folder_and_resumes_to_the_same_result(
        tiny_saved_model, model, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    settings = dict(per_class=40, threshold=0.0, batch_size=16, formats=("png", "tfrecord"),
                    shard_size=7, model=model, progress=False)
    killed_dir = str(tmp_path / "killed")
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, "sample", "--model", tiny_saved_model[0], "--out",
         killed_dir, "--per-class", "40", "--threshold", "0", "--batch-size", "1", "--format",
         "both", "--shard-size", "7", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reference_dir = str(tmp_path / "reference")
        sample(tiny_saved_model[0], reference_dir, **settings)  # meanwhile, uninterrupted
        deadline = time.time() + 240
        while time.time() < deadline and victim.poll() is None:
            path = os.path.join(killed_dir, "manifest.csv")
            if os.path.exists(path) and len(manifest(killed_dir)) >= 14:
                break
            time.sleep(0.02)
        assert victim.poll() is None, victim.stderr.read()[-2000:]
        victim.send_signal(signal.SIGKILL)
        loaded = victim.communicate()[0].strip().splitlines()
    finally:
        if victim.poll() is None:
            victim.kill()
    assert "hvitgan_tf.sampling.sampler" in loaded[-1]  # the report came while sampling
    assert not [m for m in ast.literal_eval(loaded[-1]) if m.startswith(("hvitgan_tf.models",
                                                             "hvitgan_tf.training"))]

    rows = manifest(killed_dir)
    assert 14 <= len(rows) < 80
    for row in rows:  # the manifest never names a file that does not exist
        assert os.path.getsize(os.path.join(killed_dir, row["file"])) > 0
        assert os.path.exists(os.path.join(killed_dir, row["tfrecord"]))
    report = sample(tiny_saved_model[0], killed_dir, **settings)
    assert report.resumed and report.complete
    assert not glob.glob(os.path.join(killed_dir, ".tmp-*"))
    assert folder_bytes(killed_dir) == folder_bytes(reference_dir)
    assert read_records(killed_dir) == read_records(reference_dir)
    assert len(manifest(killed_dir)) == 80
