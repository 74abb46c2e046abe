"""Markdown/CSV/PNG benchmark reports."""
import csv
import os

import numpy as np
import pytest

from hvitgan_tf.evaluation.classification_metrics import MeanStd, roc_curve, roc_auc
from hvitgan_tf.evaluation.reports import (average_roc_curve, markdown_table,
                                           plot_metric_bars, plot_roc_curves,
                                           results_from_runs, write_results_csv,
                                           write_runs_csv)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs():
    return {
        "ResNet34": [
            {"accuracy": 0.870, "auc": 0.940, "sensitivity": 0.84, "specificity": 0.91},
            {"accuracy": 0.892, "auc": 0.950, "sensitivity": 0.85, "specificity": 0.92},
        ],
        "ResNet34 + Aug (CP+SA)": [
            {"accuracy": 0.916, "auc": 0.954, "sensitivity": 0.891, "specificity": 0.951},
        ],
    }


def assert_no_temporary_files(folder):
    assert not [name for name in os.listdir(folder) if name.startswith(".tmp")]


def test_markdown_table_has_the_spec_layout(runs):
    results = results_from_runs(runs)
    text = markdown_table(results)
    assert text.splitlines() == [
        "| model | accuracy | AUC | sensitivity | specificity |",
        "|---|---|---|---|---|",
        "| ResNet34 | 0.881 ± 0.016 | 0.945 ± 0.007 | 0.845 ± 0.007 | 0.915 ± 0.007 |",
        "| ResNet34 + Aug (CP+SA) | 0.916 ± 0.000 | 0.954 ± 0.000 | 0.891 ± 0.000 | "
        "0.951 ± 0.000 |",
    ]
    missing = markdown_table({"x": {"accuracy": MeanStd(0.5, 0.1, 2)}})
    assert "| x | 0.500 ± 0.100 | – | – | – |" in missing


def test_csv_files_read_back(runs, tmp_path):
    results = results_from_runs(runs)
    path = write_results_csv(results, tmp_path / "results.csv")
    rows = list(csv.DictReader(open(path, newline="")))
    assert [r["model"] for r in rows] == list(runs)
    assert float(rows[0]["accuracy_mean"]) == pytest.approx(0.881)
    assert float(rows[0]["accuracy_std"]) == pytest.approx(np.std([0.870, 0.892], ddof=1))
    assert rows[0]["repeats"] == "2" and rows[1]["repeats"] == "1"
    raw = list(csv.DictReader(open(write_runs_csv(runs, tmp_path / "runs.csv"), newline="")))
    assert len(raw) == 3 and raw[1]["repeat"] == "1" and float(raw[1]["auc"]) == 0.95
    assert_no_temporary_files(tmp_path)


def test_roc_and_bar_plots_are_png_files(runs, tmp_path):
    rng = np.random.default_rng(0)
    curves, repeats = {}, []
    for name, shift in (("ResNet34", 1.0), ("DenseNet169", 2.0)):
        y = rng.integers(0, 2, 300)
        s = rng.normal(size=300) + shift * y
        fpr, tpr, _ = roc_curve(y, s)
        curves[name] = (fpr, tpr, None, roc_auc(y, s))
        repeats.append((fpr, tpr))
    grid, mean_tpr, std_tpr = average_roc_curve(repeats)
    assert grid[0] == 0 and mean_tpr[0] == 0 and mean_tpr[-1] == pytest.approx(1.0)
    assert np.all(np.diff(mean_tpr) >= -1e-12)
    curves["mean of both"] = (grid, mean_tpr, std_tpr)
    roc_path = plot_roc_curves(curves, tmp_path / "roc.png")
    bars_path = plot_metric_bars(results_from_runs(runs), tmp_path / "bars.png")
    for path in (roc_path, bars_path):
        with open(path, "rb") as handle:
            assert handle.read(8) == PNG_MAGIC
        assert os.path.getsize(path) > 5000
    assert_no_temporary_files(tmp_path)


def test_average_roc_curve_keeps_a_single_curves_area():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + y
    fpr, tpr, _ = roc_curve(y, s)
    grid, mean_tpr, std_tpr = average_roc_curve([(fpr, tpr)], num_points=2001)
    area = np.sum(np.diff(grid) * (mean_tpr[1:] + mean_tpr[:-1]) / 2)
    assert area == pytest.approx(roc_auc(y, s), abs=2e-3)
    assert np.all(std_tpr == 0)
