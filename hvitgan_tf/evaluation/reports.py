"""Benchmark reports: a Markdown table, CSV files, ROC curves and a grouped bar chart, and
``write_reports``, which writes them all into a benchmark's output folder.

``results`` throughout is ``{model name: {metric: MeanStd}}`` as produced by
``classification_metrics.summarize_repeats`` (insertion order = row order). The Markdown table
has docs/method.md §9's layout::

    | model | accuracy | AUC | sensitivity | specificity |
    |---|---|---|---|---|
    | ResNet34 | 0.881 ± 0.012 | ... |

Every file is written atomically (temporary name, then rename). Plots use matplotlib's
non-interactive Agg backend, so they work on a headless machine.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from hvitgan_tf.evaluation.classification_metrics import MeanStd
from hvitgan_tf.fileio import atomic_open, atomic_path, write_json

BENCHMARK_METRICS = ("accuracy", "auc", "sensitivity", "specificity")
#: Column headings; metrics not listed are shown under their own name.
METRIC_TITLES = {"accuracy": "accuracy", "auc": "AUC", "sensitivity": "sensitivity",
                 "specificity": "specificity", "fid": "FID", "kid": "KID"}

Results = Mapping[str, Mapping[str, MeanStd]]
PathLike = Union[str, os.PathLike]


def _title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric)


def _cell(value: Optional[MeanStd], digits: int) -> str:
    if value is None or value.n == 0:
        return "–"
    return value.format(digits)


def markdown_table(results: Results, metrics: Sequence[str] = BENCHMARK_METRICS,
                   digits: int = 3) -> str:
    """The results as a Markdown table, one row per model, cells ``mean ± std``."""
    lines = ["| model | " + " | ".join(_title(m) for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for model, row in results.items():
        cells = [_cell(row.get(metric), digits) for metric in metrics]
        # A pipe in a model name would split the cell.
        lines.append(f"| {str(model).replace('|', '/')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results_csv(results: Results, path: PathLike,
                      metrics: Sequence[str] = BENCHMARK_METRICS) -> str:
    """One row per model: ``model, <metric>_mean, <metric>_std, ..., repeats``."""
    header = ["model"] + [f"{m}_{part}" for m in metrics for part in ("mean", "std")]
    header.append("repeats")
    rows = []
    for model, row in results.items():
        values = []
        for metric in metrics:
            summary = row.get(metric)
            values += ["", ""] if summary is None else [repr(summary.mean), repr(summary.std)]
        repeats = max((s.n for s in row.values()), default=0)
        rows.append([model] + values + [repeats])
    return _write_csv(path, header, rows)


def write_runs_csv(runs: Mapping[str, Sequence[Mapping[str, float]]], path: PathLike,
                   metrics: Sequence[str] = BENCHMARK_METRICS) -> str:
    """Every single run: ``model, repeat, <metric>...`` (the raw numbers behind the table)."""
    header = ["model", "repeat"] + list(metrics)
    rows = [[model, index] + [repr(float(run[m])) if m in run else "" for m in metrics]
            for model, model_runs in runs.items() for index, run in enumerate(model_runs)]
    return _write_csv(path, header, rows)


def _write_csv(path: PathLike, header, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    return os.fspath(path)


# -- ROC curves -------------------------------------------------------------------------------

def average_roc_curve(curves: Sequence[Tuple[np.ndarray, np.ndarray]], num_points: int = 201
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std of several ROC curves' TPR on a common FPR grid ("vertical averaging").

    For one curve per model over the repeats. Returns ``(fpr_grid, mean_tpr, std_tpr)``; at
    FPR values where a curve jumps, its upper TPR is used, so a curve keeps its area.
    """
    grid = np.linspace(0.0, 1.0, num_points)
    tprs = []
    for fpr, tpr in curves:
        fpr = np.asarray(fpr, np.float64)
        tpr = np.asarray(tpr, np.float64)
        # A vertical jump repeats an FPR value: keep its top point (TPR only grows along the
        # curve, so that is the last one), then interpolate linearly between distinct FPRs.
        last = np.r_[np.diff(fpr) != 0, True]
        tprs.append(np.interp(grid, fpr[last], tpr[last]))
    tprs = np.asarray(tprs)
    tprs[:, 0] = 0.0  # every ROC curve starts at (0, 0)
    return grid, tprs.mean(axis=0), tprs.std(axis=0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display needed; keeps an already chosen backend
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path: PathLike) -> str:
    plt = _pyplot()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(figure)
    return os.fspath(path)


def plot_roc_curves(curves: Mapping[str, tuple], path: PathLike,
                    title: str = "ROC curves (positive class: label 1)") -> str:
    """Several ROC curves on one PNG.

    ``curves``: ``{label: (fpr, tpr)}``, or ``(fpr, tpr, tpr_std)`` to draw a ±1 std band (as
    from ``average_roc_curve``), or with a 4th item ``auc`` shown in the legend.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 5.0))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    for label, curve in curves.items():
        fpr, tpr = np.asarray(curve[0]), np.asarray(curve[1])
        band = curve[2] if len(curve) > 2 else None
        auc = curve[3] if len(curve) > 3 else float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])
                                                           / 2.0))
        (line,) = axes.plot(fpr, tpr, linewidth=1.6, label=f"{label} (AUC {auc:.3f})")
        if band is not None:
            band = np.asarray(band)
            axes.fill_between(fpr, np.clip(tpr - band, 0, 1), np.clip(tpr + band, 0, 1),
                              color=line.get_color(), alpha=0.15, linewidth=0)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("false positive rate (1 − specificity)")
    axes.set_ylabel("true positive rate (sensitivity)")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    return _save_figure(figure, path)


def plot_metric_bars(results: Results, path: PathLike,
                     metrics: Sequence[str] = BENCHMARK_METRICS,
                     title: str = "Augmentation benchmark") -> str:
    """Grouped bar chart: one group per metric, one bar per model, ±1 std error bars."""
    plt = _pyplot()
    models = list(results)
    if not models:
        raise ValueError("no results to plot")
    width = 0.8 / len(models)
    positions = np.arange(len(metrics))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(metrics) + 0.4 * len(models)), 4.5))
    shown = []
    for index, model in enumerate(models):
        means = [results[model].get(m, MeanStd(np.nan, np.nan, 0)).mean for m in metrics]
        stds = [results[model].get(m, MeanStd(np.nan, np.nan, 0)).std for m in metrics]
        axes.bar(positions + (index - (len(models) - 1) / 2) * width, means, width,
                 yerr=stds, capsize=2, label=model)
        shown += [v for v in means if np.isfinite(v)]
    axes.set_xticks(positions)
    axes.set_xticklabels([_title(m) for m in metrics])
    if shown and 0.0 <= min(shown) and max(shown) <= 1.0:
        # Rates in [0, 1]: zoom in on the range in use (they are mostly far above 0.5), to
        # the tenth below the lowest bar.
        axes.set_ylim(max(0.0, np.floor(min(shown) * 10 - 1) / 10), 1.0)
    axes.set_title(title)
    # Outside the axes: with a zoomed y range, any corner inside may hide a bar.
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return _save_figure(figure, path)


def results_from_runs(runs: Mapping[str, Sequence[Mapping[str, float]]]
                      ) -> Dict[str, Dict[str, MeanStd]]:
    """``{model: [run metrics, ...]}`` -> ``{model: {metric: MeanStd}}``."""
    from hvitgan_tf.evaluation.classification_metrics import summarize_repeats

    return {model: summarize_repeats(model_runs) for model, model_runs in runs.items()}


# -- the benchmark's output folder --------------------------------------------------------

def write_reports(out_dir: str, results, rows: Dict[str, List[dict]], summary: dict,
                  binary: bool = True) -> Dict[str, str]:
    """results.md / .csv / .json, runs.csv, roc.png, bars.png: the output folder that
    ``hvitgan_tf.evaluation.benchmark``'s docstring describes."""
    files = {}
    files["markdown"] = os.path.join(out_dir, "results.md")
    with atomic_open(files["markdown"], "w", encoding="utf-8") as handle:
        handle.write(results_markdown(results, summary))
    files["csv"] = write_results_csv(results, os.path.join(out_dir, "results.csv"))
    files["runs_csv"] = write_runs_csv(
        {title: [r["metrics"] for r in records] for title, records in rows.items()},
        os.path.join(out_dir, "runs.csv"))
    if binary:
        from hvitgan_tf.evaluation.classification_metrics import roc_curve

        curves = {}
        for title, records in rows.items():
            per_run = []
            for record in records:
                with np.load(os.path.join(out_dir, "runs", record["run_id"] + ".npz")) as data:
                    fpr, tpr, _ = roc_curve(data["labels"], data["probabilities"][:, 1])
                per_run.append((fpr, tpr))
            grid, mean, std = average_roc_curve(per_run)
            curves[title] = (grid, mean, std, results[title]["auc"].mean)
        files["roc"] = plot_roc_curves(curves, os.path.join(out_dir, "roc.png"),
                                       title="Test ROC, mean over repeats "
                                             "(positive class: label 1)")
    files["bars"] = plot_metric_bars(
        results, os.path.join(out_dir, "bars.png"),
        title="Augmentation benchmark (mean ± std over repeats)")
    files["json"] = os.path.join(out_dir, "results.json")
    write_json(files["json"], {**summary, "files": files})
    return files


def results_markdown(results, summary: dict) -> str:
    """docs/method.md §9's table under a short description of how it was measured."""
    config = summary["config"]
    recipe = config["recipe"]
    data = config["data"]
    subset = ""
    if data.get("limit"):
        subset = f", training subset --limit {data['limit']} (seed {data.get('seed', 0)})"
    elif data.get("fraction"):
        subset = f", training subset --fraction {data['fraction']} (seed {data.get('seed', 0)})"
    lines = [
        "# Augmentation benchmark",
        "",
        markdown_table(results).rstrip("\n"),
        "",
        f"Mean ± sample std over {config['repeats']} repeat(s) (seeds {config['seed']}.."
        f"{config['seed'] + config['repeats'] - 1}); test split of `{data.get('spec')}` "
        f"({sum(config['test_class_counts'])} patches), positive class "
        f"`{config['class_names'][1] if len(config['class_names']) == 2 else 'n/a'}` "
        f"(label 1).",
        "",
        f"- Training data: {config['num_train_real']} real patches{subset}.",
    ]
    for arm in config["arms"]:
        if arm["synthetic_dir"] is None:
            continue
        counts = summary["synthetic"].get(arm["key"], {}).get("images_per_class", {})
        how = ""
        if arm["plan"]:
            plan = arm["plan"]
            how = (f", generated by `{plan['model_dir']}` with threshold {plan['threshold']:g}"
                   f", truncation {plan['truncation']:g}")
        lines.append(f"- {arm['title']}: + {sum(counts.values())} synthetic patches "
                     f"({', '.join(f'{k} {v}' for k, v in counts.items())}){how}.")
    options = config["classifier_options"]
    lines += [
        f"- Images at {config['image_size']} px; Adam (lr {recipe['learning_rate']:g}), batch "
        f"{recipe['batch_size']}, {recipe['epochs']} epoch(s), "
        + ("random rot90/flip augmentation" if recipe["augment"] else "no augmentation")
        + "; the same recipe for every model.",
        f"- ResNet width multiplier {options['width_multiplier']:g}"
        + (", small-input stem" if options["small_input"] else "")
        + ("; DenseNet169 from ImageNet weights" if options["pretrained"] else "")
        + _head_text(config) + ".",
        "",
    ]
    return "\n".join(lines)


def _head_text(config: dict) -> str:
    if "hvitgan_head" not in config["models"]:
        return ""
    if config.get("gan_head_pretrained"):
        return (f"; own class head: the GAN's discriminator from {config['gan_head']}, "
                "fine-tuned")
    return f"; own class head: the GAN's discriminator architecture ({config['gan_head']})"
