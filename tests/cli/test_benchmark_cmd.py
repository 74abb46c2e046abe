"""`hvitgan-tf benchmark` end to end on the demo data with tiny classifiers: synthetic data
generated from the tiny export, every output file, docs/method.md §9's table, and a resumed
rerun."""
import csv
import json
import os
import re

import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

CELL = r"\d\.\d{3} ± \d\.\d{3}"


def test_reduced_benchmark_writes_every_output_and_resumes(tmp_path, tiny_saved_model,
                                                           tiny_run_dir):
    base, version = tiny_saved_model
    out = tmp_path / "bench"
    args = ["benchmark", "--models", "resnet34,hvitgan_head", "--repeats", "1",
            "--epochs", "1", "--batch-size", "32", "--limit", "32",
            "--width-multiplier", "0.125", "--small-input",
            "--model", base, "--threshold", "0", "--synthetic-per-class", "8",
            "--gan-run", tiny_run_dir, "--out", str(out)]
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "[4/4] own class head + Aug (CP, no SA), repeat 1/1" in result.output
    assert "32 real + 16 synthetic training patches" in result.output

    for name in ("results.md", "results.csv", "runs.csv", "results.json", "roc.png",
                 "bars.png"):
        assert os.path.getsize(out / name) > 0, name
    assert len([f for f in os.listdir(out / "runs") if f.endswith(".json")]) == 4
    # The synthetic set: 8 per class from the tiny GAN, at its 16 px. Its class head is too
    # young to be confident, so selection is off (threshold 0): the "CP, no SA" arm.
    for name in ("dab_negative", "dab_positive"):
        assert len(os.listdir(out / "synthetic" / "cp" / name)) == 8

    table = (out / "results.md").read_text().splitlines()
    assert table[2] == "| model | accuracy | AUC | sensitivity | specificity |"
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == [
        "ResNet34", "ResNet34 + Aug (CP, no SA)", "own class head",
        "own class head + Aug (CP, no SA)"]
    for row in rows:
        assert re.fullmatch(rf"\| [^|]+ \| {CELL} \| {CELL} \| {CELL} \| {CELL} \|", row), row
    assert "Images at 16 px" in "\n".join(table)

    with open(out / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 4
    assert all(0.0 <= float(run[m]) <= 1.0 for run in runs
               for m in ("accuracy", "auc", "sensitivity", "specificity"))
    summary = json.loads((out / "results.json").read_text())
    assert summary["config"]["image_size"] == 16
    assert summary["config"]["gan_head_pretrained"] is True
    assert summary["synthetic"]["cp"]["images_per_class"] == {"dab_negative": 8,
                                                                 "dab_positive": 8}
    own = next(r for r in summary["runs"] if r["run_id"] == "hvitgan_head__real__r0")
    assert own["num_real"] == 32 and own["num_synthetic"] == 0

    # A rerun with the same options trains nothing and writes the same table.
    first = (out / "results.md").read_text()
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("done earlier, skipping") == 4
    assert "is complete, reusing it" in again.output
    assert (out / "results.md").read_text() == first
