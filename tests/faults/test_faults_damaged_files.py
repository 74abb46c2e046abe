"""Every file ``train``, ``export`` and ``sample`` read back, truncated or replaced by a foreign
one (issue 13): the command exits 2 with one line naming the file and leaves every folder as it
was, or, where the file can be rebuilt (a torn manifest, the class list sample rewrites,
``last.json`` from the checkpoints beside it), says so and finishes with what an undamaged
folder gives.

The kinds of damage are described in ``fault_injection``. tests/test_damaged_files.py holds the
first cases found (and the end-to-end fallback of ``--resume`` past a truncated checkpoint).
"""
import csv
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from fault_injection import damage, error_line, snapshot
from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

CHECKPOINT = "checkpoints/iter-00000004.weights.h5"  # the tiny run's only checkpoint


def run_copy(tiny_run_dir, tmp_path, damaged, kind):
    """A copy of the tiny run with one file damaged (a ``best.json`` is first made, naming the
    run's checkpoint, when that is the one to damage)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    if damaged.endswith("best.json"):
        shutil.copy(run / "checkpoints" / "last.json", run / damaged)
    damage(run / damaged, kind)
    return run


# -- train --resume ----------------------------------------------------------------------------

TRAIN_CASES = ([("run.json", kind) for kind in ("truncated", "png", "text", "random", "json")]
               + [("checkpoints/best.json", kind) for kind in ("truncated", "json")]
               # The only checkpoint: nothing intact to fall back to; or another model's.
               + [(CHECKPOINT, kind) for kind in ("truncated", "png", "random", "hdf5")])


@pytest.mark.parametrize("damaged, kind", TRAIN_CASES)
def test_train_resume_names_a_damaged_file_and_writes_nothing(tiny_run_dir, tmp_path, damaged,
                                                              kind):
    run = run_copy(tiny_run_dir, tmp_path, damaged, kind)
    before = snapshot(run)
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "6",
                                      "--no-export"])
    assert str(run / damaged) in error_line(result)
    assert snapshot(run) == before


LAST = "checkpoints/last.json"


def damage_last(run, kind):
    """``last.json`` damaged as ``kind``, deleted, or naming a weights file that is missing."""
    if kind == "deleted":
        (run / LAST).unlink()
    elif kind == "names a missing file":
        (run / LAST).write_text(json.dumps({"weights": "iter-00000009.weights.h5",
                                            "iteration": 9, "epoch": 0}))
    else:
        damage(run / LAST, kind)


@pytest.mark.parametrize("kind", ["truncated", "png", "json", "deleted", "names a missing file"])
def test_resume_past_a_damaged_last_json_continues_from_the_newest_intact_checkpoint(
        tiny_run_dir, tmp_path, kind):
    """``last.json`` is only a pointer: the checkpoints beside it say where the run was. The
    run already has its 4 iterations, so the resume loads the checkpoint and stops there."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    damage_last(run, kind)
    weights = (run / CHECKPOINT).read_bytes()
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "4",
                                      "--no-export"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "is damaged" in line]
    assert len(said) == 1, result.output  # one line, naming the file and what is used instead
    assert said[0].startswith(f"note: {run / LAST} is damaged ("), said[0]
    assert said[0].endswith(f"); resuming from {run / CHECKPOINT} (iteration 4) instead")
    assert "Traceback" not in result.output
    # last.json names the checkpoint again; the checkpoint itself is untouched.
    record = json.loads((run / LAST).read_text())
    assert (record["weights"], record["iteration"]) == ("iter-00000004.weights.h5", 4)
    assert (run / CHECKPOINT).read_bytes() == weights


def test_resume_past_a_damaged_last_json_trains_on(tiny_run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    damage(run / LAST, "truncated")
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "5",
                                      "--no-export"])
    assert result.exit_code == 0, result.output
    assert f"{run / LAST} is damaged" in result.output
    assert "resuming from iteration 4" in result.output and "trained 5 iterations" in result.output
    assert json.loads((run / LAST).read_text())["iteration"] == 5


@pytest.mark.parametrize("kind", ["truncated", "deleted"])
def test_resume_past_a_damaged_last_json_with_no_intact_checkpoint_refuses(tiny_run_dir,
                                                                           tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    damage_last(run, kind)
    damage(run / CHECKPOINT, "truncated")
    before = snapshot(run)
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "6",
                                      "--no-export"])
    line = error_line(result)
    assert str(run / LAST) in line and "no intact" in line
    assert snapshot(run) == before


@pytest.mark.parametrize("kind", ["truncated", "png", "text", "random", "flipped"])
def test_resume_falls_back_past_every_kind_of_damaged_checkpoint(tiny_run_dir, tmp_path, kind):
    """What ``--resume`` does with a damaged last checkpoint when an older one is intact
    (end to end, with the message, in tests/test_damaged_files.py)."""
    from hvitgan_tf.training import checkpoints

    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    shutil.copy(run / CHECKPOINT, run / "checkpoints" / "iter-00000002.weights.h5")
    damage(run / CHECKPOINT, kind)
    assert checkpoints.damage(str(run / CHECKPOINT)) is not None
    older = checkpoints.newest_intact(str(run), before=4)
    assert older is not None and older["iteration"] == 2


# -- export ------------------------------------------------------------------------------------

EXPORT_CASES = ([("run.json", kind) for kind in ("truncated", "png", "json")]
                + [("checkpoints/last.json", kind) for kind in ("truncated", "png", "json")]
                + [("checkpoints/best.json", kind) for kind in ("truncated", "json")]
                + [(CHECKPOINT, kind) for kind in ("truncated", "png")])


@pytest.mark.parametrize("damaged, kind", EXPORT_CASES)
def test_export_names_a_damaged_file_and_writes_nothing(tiny_run_dir, tmp_path, damaged, kind):
    run = run_copy(tiny_run_dir, tmp_path, damaged, kind)
    before = snapshot(run)
    models = tmp_path / "models"
    result = CliRunner().invoke(cli, ["export", str(run), "--export-dir", str(models)])
    assert str(run / damaged) in error_line(result)
    assert snapshot(run) == before
    assert snapshot(models) == {}


# -- sample ------------------------------------------------------------------------------------

SAMPLE = ["--threshold", "0", "--batch-size", "4", "--seed", "0", "--quiet"]


def sample(model, out, per_class):
    return CliRunner().invoke(cli, ["sample", "--model", str(model), "--out", str(out),
                                    "--per-class", str(per_class), *SAMPLE])


@pytest.fixture(scope="module")
def outputs(tiny_saved_model, tmp_path_factory, reuse_loaded_models):
    """``(started, reference)``: 2 images per class, and the 4 per class it continues to."""
    root = tmp_path_factory.mktemp("outputs")
    for name, per_class in (("started", 2), ("reference", 4)):
        result = sample(tiny_saved_model[0], root / name, per_class)
        assert result.exit_code == 0, result.output
    return root / "started", root / "reference"


def result_of(out):
    """What a sampling run leaves, for comparing runs: every file but the run's own clock."""
    files = snapshot(out)
    state = json.loads(files.pop("sampling.json"))
    state.pop("updated_at")
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: row["id"])
    files.pop("manifest.csv")
    return files, state, rows


MODEL_CASES = ([("saved_model.pb", kind) for kind in ("truncated", "png")]
               + [("variables/variables.index", kind) for kind in ("truncated", "random")]
               + [("variables/variables.data-00000-of-00001", kind)
                  for kind in ("truncated", "flipped")]
               + [("assets.extra/hvitgan.json", kind) for kind in ("truncated", "png", "json")])


@pytest.mark.parametrize("damaged, kind", MODEL_CASES)
def test_sample_from_a_damaged_model_names_it_and_leaves_out_as_it_was(
        tiny_saved_model, outputs, tmp_path, reuse_loaded_models, damaged, kind):
    version = tmp_path / "models" / "hvitgan" / "1"
    shutil.copytree(tiny_saved_model[1], version)
    damage(version / damaged, kind)
    out = tmp_path / "out"
    shutil.copytree(outputs[0], out)
    before = snapshot(out)
    line = error_line(sample(version.parent, out, 4))
    assert str(version / damaged) in line  # the file, not only the version folder
    assert snapshot(out) == before


@pytest.mark.parametrize("damaged, kind", [("variables/variables.index", "truncated"),
                                           ("variables/variables.data-00000-of-00001",
                                            "truncated")])
def test_evaluate_of_a_damaged_model_names_the_file(tiny_saved_model, tmp_path,
                                                    reuse_loaded_models, damaged, kind):
    version = tmp_path / "models" / "hvitgan" / "1"
    shutil.copytree(tiny_saved_model[1], version)
    damage(version / damaged, kind)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(version.parent), "--no-fid",
                                      "--split", "test", "--out", str(report)])
    assert str(version / damaged) in error_line(result)
    assert not report.exists()


@pytest.fixture(scope="module")
def sharded_model(tmp_path_factory):
    """A SavedModel whose variables are split over three data shards, one of them (``b``) cut
    across two: as a large model is saved. ``(folder, shard paths)``."""
    import tensorflow as tf

    module = tf.Module()
    module.a = tf.Variable(tf.ones([1000]))
    module.b = tf.Variable(tf.fill([1000], 2.0))
    module.c = tf.Variable(tf.fill([1000], 3.0))
    folder = tmp_path_factory.mktemp("sharded") / "1"
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=5000)  # bytes
    tf.saved_model.save(module, str(folder),
                        options=tf.saved_model.SaveOptions(experimental_sharding_callback=policy))
    shards = sorted((folder / "variables").glob("variables.data-*"))
    assert [shard.name for shard in shards] == [f"variables.data-0000{i}-of-00003"
                                                for i in range(3)]
    return folder, shards


@pytest.mark.parametrize("shard, kind", [(1, "truncated"), (2, "deleted"), (0, "flipped"),
                                         (2, "truncated")])
def test_a_damaged_shard_of_a_sharded_model_is_named(sharded_model, tmp_path, shard, kind):
    """Not ``variables.data-*``: the shard that does not read back, and only that one."""
    from hvitgan_tf.errors import UserError
    from hvitgan_tf.exported_model import load_saved_model

    folder = tmp_path / "1"
    shutil.copytree(sharded_model[0], folder)
    shards = [folder / "variables" / path.name for path in sharded_model[1]]
    if kind == "deleted":
        shards[shard].unlink()
    else:
        damage(shards[shard], kind)
    with pytest.raises(UserError) as error:
        load_saved_model(str(folder))
    message = str(error.value)
    assert f"{shards[shard]} is damaged or missing" in message
    assert "*" not in message
    assert all(str(other) not in message for other in shards if other != shards[shard])


OUT_CASES = ([("manifest.csv", kind) for kind in ("text", "png", "random")]
             + [("sampling.json", kind) for kind in ("truncated", "png", "json")])


@pytest.mark.parametrize("damaged, kind", OUT_CASES)
def test_sample_into_a_folder_with_a_damaged_record_names_it_and_changes_nothing(
        tiny_saved_model, outputs, tmp_path, reuse_loaded_models, damaged, kind):
    out = tmp_path / "out"
    shutil.copytree(outputs[0], out)
    damage(out / damaged, kind)
    before = snapshot(out)
    line = error_line(sample(tiny_saved_model[0], out, 4))
    assert line.count(str(out / damaged)) == 1  # named once, not in a message of a message
    assert snapshot(out) == before


@pytest.mark.parametrize("damaged, kind", [("manifest.csv", "truncated"),
                                           ("classes.json", "truncated"),
                                           ("classes.json", "png")])
def test_sample_rebuilds_a_torn_manifest_or_a_damaged_class_list(
        tiny_saved_model, outputs, tmp_path, reuse_loaded_models, damaged, kind):
    """A manifest cut mid-row loses its torn row and the rows after it: their PNGs are made
    again, byte for byte. ``classes.json`` is written for readers of OUT, never read back by
    ``sample``: it is simply written again."""
    out = tmp_path / "out"
    shutil.copytree(outputs[0], out)
    damage(out / damaged, kind)
    result = sample(tiny_saved_model[0], out, 4)
    assert result.exit_code == 0, result.output
    assert result_of(out) == result_of(outputs[1])


@pytest.mark.parametrize("kind", ["truncated", "png"])
def test_training_on_sampled_records_names_a_damaged_class_list(tmp_path, kind):
    """``classes.json`` is read back by ``--data tfrecord:OUT`` (train, evaluate)."""
    records = tmp_path / "synthetic"
    records.mkdir()
    (records / "samples-00000.tfrecord").write_bytes(b"")  # an empty, valid shard
    (records / "classes.json").write_text('["dab_negative", "dab_positive"]\n')
    damage(records / "classes.json", kind)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data", f"tfrecord:{records}", "--preset",
                                      "tiny", "--steps", "1", "--no-export", "--out", str(run)])
    assert str(records / "classes.json") in error_line(result)
    assert not run.exists()
