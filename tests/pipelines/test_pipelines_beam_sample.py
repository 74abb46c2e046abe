"""``pipelines.beam_sample`` on the DirectRunner against ``hvitgan-tf sample --format tfrecord``
on the tiny export: the same kept samples, byte for byte, and folders each tool can continue.

The tiny model's class head is nearly constant per class (about 0.52 for one class, 0.48 for
the other), so the threshold is the median confidence of the less confident class over its
first attempts: that class keeps about half of its attempts, the other keeps all of them.
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines import beam_sample
from pipelines.beam_generation import place_samples
from hvitgan_tf.sampling.writers import ClassProgress

pytestmark = pytest.mark.slow

SEED = 3
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def threshold(tiny_saved_model):
    from hvitgan_tf.sampling import ExportedModel
    from hvitgan_tf.sampling.seeds import attempt_seeds

    model = ExportedModel(tiny_saved_model[1])
    medians = []
    for label in range(len(model.class_names)):
        out = model.generate(np.full(32, label), attempt_seeds(SEED, label, np.arange(32)))
        medians.append(float(np.median(out["confidence"])))
    return min(medians)


def cli_sample(model, out, per_class, threshold, *extra):
    from hvitgan_tf.cli.main import cli

    result = CliRunner().invoke(cli, [
        "sample", "--model", model, "--out", str(out), "--per-class", str(per_class),
        "--threshold", repr(threshold), "--seed", str(SEED), "--format", "tfrecord",
        "--batch-size", "5", "--shard-size", "5", "--quiet", *extra])
    return result


def beam_args(model, out, per_class, threshold, *extra):
    return ["--model", model, "--out", str(out), "--per-class", str(per_class),
            "--threshold", repr(threshold), "--seed", str(SEED), "--batch-size", "8",
            "--shard-size", "5", "--attempts-per-task", "16", *extra]


def manifest(out):
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def records_by_id(out):
    """``{sample id: record}``: the k-th manifest row naming a shard is the k-th record of that
    shard (both tools append rows in the order they write records).

    Records are compared in protobuf's deterministic serialization: the features of a
    ``tf.train.Example`` are a map, which ``SerializeToString()`` writes in an order that
    changes from process to process, so raw bytes of the same example differ between two
    processes (even two CLI runs); the deterministic form is equal iff every feature is.
    """
    import tensorflow as tf

    ids_per_shard = {}
    for row in manifest(out):
        ids_per_shard.setdefault(row["tfrecord"], []).append(row["id"])
    records = {}
    for shard, ids in ids_per_shard.items():
        raw = list(tf.data.TFRecordDataset(os.path.join(out, shard)).as_numpy_iterator())
        assert len(raw) == len(ids), shard
        records.update((sample, tf.train.Example.FromString(record).SerializeToString(
            deterministic=True)) for sample, record in zip(ids, raw))
    shards = sorted(name for name in os.listdir(out) if name.endswith(".tfrecord"))
    assert shards == sorted(ids_per_shard), "a shard on disk is not in the manifest"
    return records


def without_shards(rows):
    return sorted(tuple((k, v) for k, v in row.items() if k not in ("file", "tfrecord"))
                  for row in rows)


def state(out):
    with open(os.path.join(out, "sampling.json")) as handle:
        document = json.load(handle)
    document.pop("updated_at")
    return document


@pytest.fixture(scope="module")
def cli_six(tiny_saved_model, threshold, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "six"
    result = cli_sample(tiny_saved_model[0], out, 6, threshold)
    assert result.exit_code == 0, result.output
    return str(out)


def test_python_m_beam_sample_writes_the_cli_records_and_reads_back_as_tfrecord_data(
        tiny_saved_model, threshold, cli_six, tmp_path):
    out = tmp_path / "beam"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.beam_sample",
         *beam_args(tiny_saved_model[0], out, 6, threshold, "--attempts-per-class", "40")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"read with:  --data 'tfrecord:{out}/*.tfrecord'" in result.stdout

    beam_rows, cli_rows = manifest(out), manifest(cli_six)
    assert without_shards(beam_rows) == without_shards(cli_rows)
    beam_records = records_by_id(str(out))
    assert beam_records == records_by_id(cli_six)
    assert state(out) == state(cli_six)
    # The threshold really selected: one class rejected some of its first attempts.
    attempts = {row["class"]: int(row["attempt"]) for row in beam_rows}
    assert max(attempts.values()) > 5
    # Records come class by class in attempt order, 5 per shard.
    assert [row["id"] for row in beam_rows] == sorted(row["id"] for row in beam_rows)
    assert [row["tfrecord"] for row in beam_rows] == [
        f"samples-{i // 5:05d}.tfrecord" for i in range(12)]

    from hvitgan_tf.data import open_source

    source = open_source(f"tfrecord:{out}/*.tfrecord")
    assert source.class_names == ["dab_negative", "dab_positive"]
    assert sum(source.num_examples(split) for split in ("train", "validation", "test")) == 12


def test_each_tool_continues_a_folder_the_other_started(tiny_saved_model, threshold, cli_six,
                                                        tmp_path):
    model = tiny_saved_model[0]
    # Beam fills 3 per class, the CLI tops the folder up to 6.
    first = tmp_path / "beam-then-cli"
    beam_sample.run(beam_args(model, first, 3, threshold, "--attempts-per-class", "40"))
    result = cli_sample(model, first, 6, threshold)
    assert result.exit_code == 0, result.output
    assert records_by_id(str(first)) == records_by_id(cli_six)
    assert state(first) == state(cli_six)

    # The CLI fills 3 per class, Beam tops the folder up to 6.
    second = tmp_path / "cli-then-beam"
    assert cli_sample(model, second, 3, threshold).exit_code == 0
    report = beam_sample.run(beam_args(model, second, 6, threshold, "--attempts-per-class", "40"))
    assert report.resumed and report.records == 6
    assert records_by_id(str(second)) == records_by_id(cli_six)
    assert state(second) == state(cli_six)

    # Asking again for what is there generates nothing.
    again = beam_sample.run(beam_args(model, second, 6, threshold))
    assert again.generated == 0 and again.records == 0
    assert records_by_id(str(second)) == records_by_id(cli_six)


def test_a_short_class_exits_3_after_writing_and_a_rerun_continues_its_attempts(
        tiny_saved_model, tmp_path, capsys):
    from hvitgan_tf.sampling import ExportedModel
    from hvitgan_tf.sampling.seeds import attempt_seeds

    # The barely trained tiny head leans to one class. A threshold just above every one of the
    # other class's first 20 confidences keeps nothing of it, while the preferred class fills
    # its quota of 4 within its first 10 attempts, its counter stopping at the 4th one kept.
    # Which class that is, where the threshold falls and which attempts pass depend on the
    # training run; find out first.
    model = ExportedModel(tiny_saved_model[1])
    confidences = [model.generate(np.full(20, label),
                                  attempt_seeds(SEED, label, np.arange(20)))["confidence"]
                   for label in range(2)]
    full = int(np.argmax([np.median(c) for c in confidences]))
    short = 1 - full
    threshold = float(confidences[short].max()) + 1e-6
    passing = np.flatnonzero(confidences[full][:10] >= threshold)
    assert len(passing) >= 4, confidences
    full_attempts = int(passing[3]) + 1
    full_name, short_name = model.class_names[full], model.class_names[short]

    out = tmp_path / "short"
    args = beam_args(tiny_saved_model[0], out, 4, threshold, "--attempts-per-class", "10")
    with pytest.raises(SystemExit) as stop:
        beam_sample.main(args)
    assert stop.value.code == 3
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"Error: class {short_name}: 0/4 kept after 10 attempts")
    counters = state(out)["classes"]
    assert counters == {full_name: {"kept": 4, "attempts": full_attempts},
                        short_name: {"kept": 0, "attempts": 10}}
    assert len(records_by_id(str(out))) == 4

    with pytest.raises(SystemExit) as stop:
        beam_sample.main(args)
    assert stop.value.code == 3
    assert state(out)["classes"][short_name] == {"kept": 0, "attempts": 20}


@pytest.mark.parametrize("change, message", [
    (["--model", "/no/such/model"], "does not exist"),
    (["--threshold", "1.5"], "--threshold must be in [0, 1)"),
    (["--per-class", "0"], "--per-class"),
    (["--classes", "tumour"], "unknown class 'tumour'"),
    (["--expected-acceptance", "0"], "--expected-acceptance must be in (0, 1]"),
    (["--thresold", "0.9"], "unknown option(s) --thresold 0.9"),
])
def test_mistakes_are_one_line_errors_with_exit_2(tiny_saved_model, tmp_path, capsys, change,
                                                  message):
    args = beam_args(tiny_saved_model[0], tmp_path / "out", 2, 0.5) + change
    with pytest.raises(SystemExit) as stop:
        beam_sample.main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and message in err[0], err


def test_an_out_folder_sampled_with_other_settings_is_refused(tiny_saved_model, threshold,
                                                              cli_six, capsys):
    with pytest.raises(SystemExit) as stop:
        beam_sample.main(beam_args(tiny_saved_model[0], cli_six, 6, threshold + 0.01))
    assert stop.value.code == 2
    assert "was sampled with other settings" in capsys.readouterr().err


# -- planning, no model ----------------------------------------------------------------------

def test_attempt_budget_counts_the_folder_and_respects_the_cap():
    stop = beam_sample.attempt_stop
    assert stop(10, ClassProgress(), 200, None, 0.5) == 20
    assert stop(10, ClassProgress(kept=4, attempts=30), 200, None, 0.25) == 54
    assert stop(10, ClassProgress(kept=4, attempts=30), 40, None, 0.25) == 40
    assert stop(10, ClassProgress(kept=4, attempts=30), 200, 7, 0.5) == 37
    assert stop(10, ClassProgress(kept=10, attempts=30), 200, 7, 0.5) == 30  # full: nothing
    assert stop(10, ClassProgress(kept=2, attempts=200), 200, 7, 0.5) == 200  # cap used up


def test_tasks_cover_each_budget_once_in_pieces():
    job = beam_sample.SamplingJob(
        model_dir="", metadata={"class_names": ["a", "b"]}, out_dir="", seed=0,
        truncation=1.0, threshold=0.5, batch_size=4, shard_size=5, attempts_per_task=4,
        classes=[beam_sample.ClassPlan(1, "b", 3, 60, ClassProgress(1, 5), stop=14),
                 beam_sample.ClassPlan(0, "a", 3, 60, ClassProgress(3, 9), stop=9)],
        first_shard=0, output=None)
    assert job.tasks() == [(1, 5, 9), (1, 9, 13), (1, 13, 14)]


def test_placement_keeps_the_first_needed_per_class_in_class_then_attempt_order():
    firsts = {0: [(2, 20, 0.9), (5, 50, 0.8), (7, 70, 0.95)],
              1: [(0, 1, 0.7), (3, 31, 0.75)]}
    placed = place_samples(firsts, order=[1, 0], needed={0: 2, 1: 5}, first_shard=3,
                           shard_size=3)
    assert placed["rows"] == [
        [1, 0, 1, 0.7, "samples-00003.tfrecord"], [1, 3, 31, 0.75, "samples-00003.tfrecord"],
        [0, 2, 20, 0.9, "samples-00003.tfrecord"], [0, 5, 50, 0.8, "samples-00004.tfrecord"]]
    assert placed["where"] == {(1, 0): (3, 0), (1, 3): (3, 1), (0, 2): (3, 2), (0, 5): (4, 3)}


def test_remote_model_and_out_go_through_tf_io_gfile(tiny_saved_model, threshold, cli_six,
                                                     capsys):
    """``gs://`` paths take the ``tf.io.gfile`` code path; TensorFlow's in-memory ``ram://``
    file system stands in for a bucket (the DirectRunner runs in this process)."""
    import uuid

    import tensorflow as tf

    from pipelines.trainer_module import copy_tree

    root = f"ram://beam-{uuid.uuid4().hex}"
    copy_tree(tiny_saved_model[0], f"{root}/saved_models/hvitgan")
    out = f"{root}/synthetic"
    report = beam_sample.run(beam_args(f"{root}/saved_models/hvitgan", out, 3, threshold,
                                       "--attempts-per-class", "40"))
    assert report.complete and report.records == 6
    assert sorted(tf.io.gfile.listdir(out)) == [
        "classes.json", "manifest.csv", "samples-00000.tfrecord", "samples-00001.tfrecord",
        "sampling.json"]
    with tf.io.gfile.GFile(f"{out}/manifest.csv") as handle:
        rows = list(csv.DictReader(handle.read().splitlines()))
    cli_rows = manifest(cli_six)
    # The CLI's first 3 kept attempts of each class.
    first_three = [row for row in cli_rows
                   if sum(other["class"] == row["class"]
                          and int(other["attempt"]) < int(row["attempt"])
                          for other in cli_rows) < 3]
    assert without_shards(rows) == without_shards(first_three)

    with pytest.raises(SystemExit) as stop:  # a gs:// OUT is not resumed: refused, not mixed
        beam_sample.main(beam_args(f"{root}/saved_models/hvitgan", out, 3, threshold))
    assert stop.value.code == 2
    assert "already holds samples" in capsys.readouterr().err
