"""``hvitgan-tf sample``: option checks, the final table and lines, exit codes 0 / 2 / 3."""
import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow


def run(*args):
    return CliRunner().invoke(cli, ["sample", *args])


@pytest.fixture(scope="module")
def model(tiny_saved_model):
    from hvitgan_tf.sampling import ExportedModel

    return ExportedModel(tiny_saved_model[1])


@pytest.fixture(scope="module")
def plain_saved_model(tmp_path_factory):
    import tensorflow as tf

    path = tmp_path_factory.mktemp("plain") / "1"
    tf.saved_model.save(tf.Module(), str(path))
    return str(path)


def foreign_output(tmp_path, kind):
    """An --out folder that must be refused, in one of three ways."""
    from hvitgan_tf.sampling.writers import OutputFolder

    out = tmp_path / kind
    if kind == "other-model":
        OutputFolder(str(out), {
            "name": "pcam", "version": 3, "class_names": ["normal", "tumor"],
            "num_classes": 2, "image_size": 96, "model_config": {"preset": "pcam96"},
            "exported_at": "2025-01-01T00:00:00Z"},
            {"seed": 0, "truncation": 1.0, "threshold": 0.8, "formats": ["png"]})
    elif kind == "other-data":
        (out / "tumor").mkdir(parents=True)
        (out / "tumor" / "x.png").write_bytes(b"not ours")
    return str(out)


PER_CLASS = ["--per-class", "2"]


@pytest.mark.parametrize("args, message", [
    (PER_CLASS + ["--threshold", "1.0"], "--threshold must be in [0, 1), got 1.0"),
    (PER_CLASS + ["--threshold", "-0.1"], "--threshold must be in [0, 1), got -0.1"),
    (PER_CLASS + ["--truncation", "-1"], "--truncation (psi) must be >= 0, got -1.0"),
    (PER_CLASS + ["--truncation", "nan"], "--truncation (psi) must be >= 0, got nan"),
    (PER_CLASS + ["--classes", "tumor"], "unknown class 'tumor'; the model's classes are "
                                         "0=dab_negative, 1=dab_positive"),
    (PER_CLASS + ["--classes", "2"], "class id 2 is out of range"),
    (PER_CLASS + ["--num", "10"], "give exactly one of --per-class N"),
    ([], "give exactly one of --per-class N"),
    (["--num", "10", "--class-ratio", "1,2,3"],
     "--class-ratio has 3 share(s) but 2 classes are selected"),
    (["--num", "10", "--class-ratio", "tumor=1,dab_positive=1"], "unknown class 'tumor'"),
    (PER_CLASS + ["--class-ratio", "0.5,0.5"], "--class-ratio splits --num"),
    (PER_CLASS + ["--batch-size", "0"], "Invalid value for '--batch-size'"),
    (PER_CLASS + ["--format", "jpeg"], "Invalid value for '--format'"),
])
def test_bad_options_exit_2_before_anything_is_written(tiny_saved_model, tmp_path, args,
                                                       message):
    out = tmp_path / "out"
    result = run("--model", tiny_saved_model[0], "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("which, message", [
    ("missing", "does not exist"),
    ("no-versions", "holds no versions"),
    ("plain", "is a SavedModel but not an hvitgan-tf export"),
])
def test_a_model_path_that_is_not_an_hvitgan_export_exits_2(tmp_path, plain_saved_model,
                                                            which, message):
    (tmp_path / "no-versions" / "latest").mkdir(parents=True)
    path = {"missing": str(tmp_path / "nothing"), "no-versions": str(tmp_path / "no-versions"),
            "plain": plain_saved_model}[which]
    result = run("--model", path, "--per-class", "2", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, message", [
    ("other-model", "holds samples of pcam v3 (pcam96, 96 px, 2 classes, exported "
                    "2025-01-01T00:00:00Z) but --model is hvitgan v1 (tiny"),
    ("other-data", "holds data not written by 'hvitgan-tf sample'"),
    ("other-settings", "was sampled with other settings (threshold 0.5 -> 0.8)"),
])
def test_an_output_folder_of_another_model_or_run_is_refused(tiny_saved_model, model, tmp_path,
                                                             kind, message):
    if kind == "other-settings":
        from hvitgan_tf.sampling import sample

        out = str(tmp_path / kind)
        sample(None, out, per_class=1, threshold=0.5, classes=[0], model=model,
               progress=False)
    else:
        out = foreign_output(tmp_path, kind)
    before = sorted(os.walk(out))
    result = run("--model", tiny_saved_model[0], "--per-class", "2", "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert sorted(os.walk(out)) == before  # nothing generated, nothing written


def test_threshold_0_8_on_a_barely_trained_model_reports_the_short_classes(
        tiny_saved_model, model, tmp_path):
    """The default threshold, end to end: on the 4-iteration tiny model the class head is
    unsure of everything, so (unless it happens to be confident) the run ends with exit 3 and
    the per-class explanation. The expected outcome is read off the model itself."""
    from hvitgan_tf.sampling.seeds import attempt_seeds

    out = str(tmp_path / "out")
    result = run("--model", tiny_saved_model[0], "--per-class", "3", "--max-attempts", "30",
                 "--out", out, "--quiet")
    expected = []
    for label, name in enumerate(model.class_names):
        confidence = model.generate(np.full(30, label), attempt_seeds(0, label, range(30)),
                                    1.0)["confidence"]
        passing = np.flatnonzero(confidence >= 0.8)
        if len(passing) < 3:
            expected.append(f"class {name}: {len(passing)}/3 kept after 30 attempts "
                            f"(acceptance {100 * len(passing) / 30:.1f} %)")
    assert "class" in result.output and "requested" in result.output  # the table
    if expected:
        assert result.exit_code == 3, result.output
        assert result.output.strip().splitlines()[-1] == (
            "Error: " + "; ".join(expected) + "; lower --threshold or train longer")
        again = run("--model", tiny_saved_model[0], "--per-class", "3", "--max-attempts",
                    "30", "--out", out, "--quiet")
        assert again.exit_code == 3
        assert "nothing generated: every short class has used its --max-attempts" in \
            again.output
    else:
        assert result.exit_code == 0, result.output


def test_a_successful_run_prints_the_table_rates_and_where_everything_went(
        tiny_saved_model, model, tmp_path):
    out = str(tmp_path / "out")
    preview = str(tmp_path / "preview.png")
    # Threshold 0: every image is kept, so the run succeeds on any model.
    args = ["--model", tiny_saved_model[0], "--num", "5", "--class-ratio",
            "dab_negative=3,dab_positive=2", "--threshold", "0", "--truncation", "0.7",
            "--format", "both", "--seed", "3", "--out", out]
    result = run(*args, "--preview", preview)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class "))
    assert lines[header].split() == ["class", "requested", "generated", "kept", "attempts",
                                     "acceptance", "mean", "conf"]
    # requested, kept and attempts are exact; "generated" may exceed them (a batch can hold
    # more attempts than the quota needed: those are generated but not counted as attempts).
    negative, positive, total = (lines[header + i].split() for i in (1, 2, 3))
    assert negative[:2] == ["dab_negative", "3"] and negative[3:6] == ["3", "3", "100.0"]
    assert positive[:2] == ["dab_positive", "2"] and positive[3:6] == ["2", "2", "100.0"]
    assert total[0] == "total" and int(total[2]) == int(negative[2]) + int(positive[2]) >= 5
    assert any(line.startswith(f"generated {total[2]} images in") and "/s); wrote 5 in" in line
               for line in lines)
    absolute = os.path.abspath(out)
    assert f"images:     {absolute}/<class>/*.png (5 new, 5 of the requested classes in all)" \
        in lines
    assert f"tfrecords:  {absolute}/samples-*.tfrecord (samples-00000.tfrecord)" in lines
    assert f"manifest:   {absolute}/manifest.csv" in lines
    assert lines[-1] == (f"read with:  --data folder:{absolute}  or  "
                         f"--data 'tfrecord:{absolute}/*.tfrecord'")
    assert os.path.getsize(preview) > 0
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["truncation"] for row in rows} == {repr(float(np.float32(0.7)))}
    assert {(row["model_name"], row["model_version"]) for row in rows} == {("hvitgan", "1")}

    again = run(*args)
    assert again.exit_code == 0, again.output
    assert "nothing to generate" in again.output


def _files(out):
    """``{relative path: bytes}`` of the images and shards in OUT, and its temporary files."""
    found, temporary = {}, []
    for root, _, names in os.walk(out):
        for name in names:
            path = os.path.join(root, name)
            if name.startswith(".tmp-"):
                temporary.append(path)
            elif name.endswith((".png", ".tfrecord")):
                found[os.path.relpath(path, out)] = open(path, "rb").read()
    return found, temporary


def _pngs_and_records(out):
    import tensorflow as tf

    files, _ = _files(out)
    records = sorted(raw for name in files if name.endswith(".tfrecord")
                     for raw in tf.data.TFRecordDataset(os.path.join(out, name))
                     .as_numpy_iterator())
    return {name: data for name, data in files.items() if name.endswith(".png")}, records


def _manifest_rows(out):
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("output_format", ["png", "both"])
def test_a_full_disk_ends_with_one_line_and_a_rerun_finishes_the_same_set(
        tiny_saved_model, tmp_path, monkeypatch, disk_full_after, output_format):
    args = ["--model", tiny_saved_model[0], "--per-class", "6", "--threshold", "0",
            "--batch-size", "4", "--format", output_format, "--shard-size", "3", "--quiet"]
    reference = str(tmp_path / "reference")
    assert run(*args, "--out", reference).exit_code == 0

    out = str(tmp_path / "out")
    disk_full_after(7)  # the 8th PNG, in the middle of the second batch, does not fit
    result = run(*args, "--out", out)
    monkeypatch.undo()

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # png: the 7 complete PNGs stay listed; both: the 6 of the two full shards do, and the 7th,
    # waiting for a third shard, was removed with that shard.
    kept = 7 if output_format == "png" else 6
    rows = _manifest_rows(out)
    assert len(rows) == kept
    failed = os.path.join(os.path.abspath(out), _manifest_rows(reference)[7]["file"])
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: no space left on device writing {failed}: {kept} images kept in "
        f"{os.path.abspath(out)} (each listed in its manifest.csv); free some space and rerun "
        "the same command to continue")
    on_disk, temporary = _files(out)
    listed = {r["file"] for r in rows} | {r["tfrecord"] for r in rows if r["tfrecord"]}
    assert set(on_disk) == listed and not temporary

    again = run(*args, "--out", out)
    assert again.exit_code == 0, again.output
    # The same images and records; shards may group the records differently after a resume.
    assert _pngs_and_records(out) == _pngs_and_records(reference)
    def rows_without_shard(folder):
        return sorted(({**row, "tfrecord": bool(row["tfrecord"])} for row in
                       _manifest_rows(folder)), key=lambda row: row["id"])

    assert rows_without_shard(out) == rows_without_shard(reference)


def test_a_huge_per_class_is_announced_up_front_and_still_runs(
        tiny_saved_model, tmp_path, disk_full_after):
    out = str(tmp_path / "out")
    disk_full_after(10)  # ends the trillion-image run early, as a full disk would
    result = run("--model", tiny_saved_model[0], "--per-class", "1000000000000",
                 "--threshold", "0", "--batch-size", "4", "--out", out, "--quiet")
    lines = result.stderr.strip().splitlines()
    warning = next(line for line in lines if line.startswith("warning: "))
    # Estimated after the second batch (the first pays the model's start-up), which leaves
    # 2 x (10^12 - 4) to go.
    assert warning.startswith("warning: the 1,999,999,999,992 images still to keep (")
    assert "years (more than a day) at the measured" in warning
    assert "of disk, more than the " in warning and f"free in {os.path.abspath(out)}" in warning
    assert lines.index(warning) < len(lines) - 1  # before the run ended (here: the full disk)
    assert result.exit_code == 2 and lines[-1].startswith("Error: no space left on device")


def test_a_plan_larger_than_the_free_disk_is_announced_but_not_refused(
        tiny_saved_model, tmp_path, monkeypatch):
    import shutil

    out = str(tmp_path / "out")
    args = ["--model", tiny_saved_model[0], "--per-class", "4", "--threshold", "0",
            "--batch-size", "2", "--quiet"]
    result = run(*args, "--out", str(tmp_path / "roomy"))
    assert result.exit_code == 0 and "warning" not in result.stderr

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: real(path)._replace(free=1000))
    result = run(*args, "--out", out)
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning: "))
    assert warning.startswith("warning: the 4 images still to keep (")  # after 2 batches of 2
    assert "(more than a day)" not in warning
    assert f", more than the 1.0 kB free in {os.path.abspath(out)}; going on anyway" in warning
    assert len(_manifest_rows(out)) == 8
