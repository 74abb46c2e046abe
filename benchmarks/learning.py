"""Does the GAN learn? Train a preset on a dataset and measure its EMA generator along the way.

    python benchmarks/learning.py --data glyphs --iterations 900 --every 150
    python benchmarks/learning.py --data demo                      # the quick start's settings
    python benchmarks/learning.py --data glyphs --set lr_g=2e-4 --set d_embed_dim=192

At iteration 0, every ``--every`` iterations and at the end, with the EMA generator
(``hvitgan_tf.evaluation.learning`` defines every number):

* ``conditioning_accuracy``: an independent CNN, trained on the real training split only,
  classifies ``--samples-per-class`` samples of each class;
* ``fid`` / ``kid`` against the held-out (validation + test) real images, in that CNN's
  feature space;
* ``diversity``: within-class mean pairwise feature distance, generated / real;
* ``d_head_accuracy``: the discriminator's class head on the real validation split;
* ``label_effect`` / ``noise_effect`` / ``pixel_std_ratio``: pixel-level checks;
* ``nuclei_ratio`` (overall and per class) / ``nuclei_area_ratio`` on stained tissue
  (``--nuclei``): haematoxylin blobs per patch and their size, generated / real.

Writes ``OUT/learning.json`` (machine-readable: settings, the judge's accuracy, every record),
``OUT/grid_NNNNN.png`` (one labelled row per class; the same noise in every row, so a column
shows what the label changes), ``OUT/curves.png`` and ``OUT/progress.png`` (the grids side by
side), and prints one JSON line per measurement. Training time excludes the measurements.

``--set FIELD=VALUE`` changes one training option (a ``TrainConfig`` field: ``lr_g``,
``n_critic``, ``diffaug``, ...) or model option (a ``ModelConfig.replace`` key: generator
fields as they are, discriminator fields prefixed ``d_``). Without ``--set`` the run uses
exactly what ``hvitgan-tf train --data DATA --preset PRESET`` would; ``--paper`` switches to the
paper's form of every departure in docs/method.md §11 (``--set`` still wins).
"""
import argparse
import ast
import dataclasses
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


# The paper's form of the preset's departures (--paper): no critic minibatch std, per-token
# LayerNorm, generator widths C, C/4, C/16, C/64, pixels from the last stage only, plain pixel
# shuffles and no noise maps.
PAPER_MODEL_CHANGES = {"d_minibatch_std_group": 0, "center_tokens": False, "widths": None,
                       "rgb_skips": False, "shuffle_blur": False, "spatial_noise": 0.0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="glyphs", help="data source (default: glyphs)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training iterations (default: what 'hvitgan-tf train' does)")
    parser.add_argument("--every", type=int, default=None,
                        help="iterations between measurements (default: iterations / 6)")
    parser.add_argument("--samples-per-class", type=int, default=None,
                        help="generated images per class per measurement (default: 100 for "
                             "10 classes or more, else 250)")
    parser.add_argument("--judge-epochs", type=int, default=8,
                        help="epochs of the independent reference classifier")
    parser.add_argument("--judge-cache", default=os.path.join(
        os.path.expanduser("~"), ".cache", "hvitgan_tf", "judges"),
        help="folder keeping trained reference classifiers ('' to retrain every time)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="change a training or model option")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's training settings and critic instead of this "
                             "package's departures (docs/method.md §11); --set still applies")
    parser.add_argument("--nuclei", choices=("auto", "on", "off"), default="auto",
                        help="count haematoxylin-stained nuclei in real and generated patches "
                             "(default auto: on for the tissue sources, demo and PCam)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="output folder (default: benchmarks/results/learning-DATA)")
    return parser.parse_args(argv)


def split_overrides(items):
    """``["lr_g=2e-4", "d_embed_dim=192"]`` -> (train changes, model changes)."""
    from hvitgan_tf.training.config import TrainConfig

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train, model = {}, {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word such as a diffaug policy
        (train if name in train_fields else model)[name] = value
    return train, model


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from hvitgan_tf import imaging
    from hvitgan_tf.data import open_source
    from hvitgan_tf.evaluation.learning import LearningProbe, RealReference, ReferenceClassifier
    from hvitgan_tf.models.config import preset
    from hvitgan_tf.training.config import TrainConfig
    from hvitgan_tf.training.runner import train

    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                   f"learning-{args.data}")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    train_changes, model_changes = split_overrides(args.overrides)
    from hvitgan_tf.training.config import PAPER_TRAIN_SETTINGS, data_train_defaults

    # What 'hvitgan-tf train --data DATA' would use (the data's own defaults), or the paper's
    # settings; --set wins over both.
    train_changes = {**data_train_defaults(args.data),
                     **(PAPER_TRAIN_SETTINGS if args.paper else {}), **train_changes}
    if args.paper:
        model_changes = {**PAPER_MODEL_CHANGES, **model_changes}

    source = open_source(args.data, seed=args.seed)
    model_config = preset(args.preset, source.num_classes, data=args.data)
    if model_changes:
        model_config = model_config.replace(**model_changes)
    train_config = TrainConfig(seed=args.seed, **train_changes)
    if args.iterations:
        train_config = train_config.replace(total_steps=args.iterations)
    per_class = args.samples_per_class or (100 if source.num_classes >= 10 else 250)
    size = model_config.image_size

    judge = ReferenceClassifier.train(source, size, epochs=args.judge_epochs, seed=args.seed,
                                      cache_dir=args.judge_cache or None)
    reference = RealReference.build(source, size, judge,
                                    tissue=measures_nuclei(args.nuclei, args.data))
    started = time.time()

    def on_record(record, grid):
        imaging.save_png(os.path.join(out, f"grid_{record['iteration']:05d}.png"), grid)
        print(json.dumps({k: v for k, v in record.items() if not isinstance(v, list)}),
              flush=True)

    probe = LearningProbe(reference, source.class_names, every=args.every or 10 ** 9,
                          samples_per_class=per_class, on_record=on_record)
    run_dir = os.path.join(out, "run")
    total = train_config.total_steps
    if args.every is None:
        from hvitgan_tf.training.data_stream import steps_per_epoch

        total = total or train_config.epochs * (
            train_config.steps_per_epoch
            or steps_per_epoch(source.num_examples("train"), train_config.batch_size,
                               train_config.n_critic))
        probe.every = max(1, total // 6)
    # No data_info: run.json records the selection the source was opened with (spec, seed).
    train(run_dir, source, model_config, train_config, verbose=0, extra_callbacks=[probe])

    result = {
        "benchmark": "learning",
        "data": args.data,
        "preset": args.preset,
        "overrides": args.overrides,
        "paper_settings": args.paper,
        "model": model_config.to_dict(),
        "train": train_config.to_dict(),
        "samples_per_class": per_class,
        "judge_validation_accuracy": judge.validation_accuracy,
        "real_heldout_diversity": reference.heldout_diversity,
        "wall_seconds": round(time.time() - started, 1),
        "records": probe.records,
        "summary": summarize(probe.records),
    }
    with open(os.path.join(out, "learning.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    plot_curves(probe.records, os.path.join(out, "curves.png"),
                title=f"{args.preset} on {args.data}")
    imaging.save_png(os.path.join(out, "progress.png"), side_by_side(probe.grids))
    print(json.dumps({"summary": result["summary"], "out": out}), flush=True)
    return result


def measures_nuclei(choice, data):
    """Whether ``--nuclei choice`` counts nuclei on ``data``: ``auto`` does on stained tissue
    (the demo and PatchCamelyon sources), where the haematoxylin channel means nuclei."""
    if choice != "auto":
        return choice == "on"
    spec = str(data).strip().lower()
    return spec == "demo" or spec.startswith("pcam")


def summarize(records):
    """Headline numbers: the last measurement, and FID relative to the first measurement after
    iteration 0 (the targets of the learning issue are stated that way)."""
    last = records[-1]
    trained = [r for r in records if r["iteration"] > 0]
    first_fid = trained[0]["fid"] if trained else None
    keys = ("iteration", "train_seconds", "conditioning_accuracy", "fid", "kid", "diversity",
            "d_head_accuracy", "label_effect", "noise_effect", "pixel_std_ratio",
            "detail_ratio", "seam_ratio", "seam_ratio_real")
    summary = {k: last[k] for k in keys}
    summary.update({k: last[k] for k in ("nuclei_ratio", "nuclei_area_ratio") if k in last})
    summary["fid_first_trained"] = first_fid
    summary["fid_ratio_to_first"] = (last["fid"] / first_fid) if first_fid else None
    return summary


def plot_curves(records, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["iteration"] for r in records]
    panels = (("conditioning_accuracy", "independent-classifier accuracy on samples", (0, 1)),
              ("d_head_accuracy", "D class head on real validation", (0, 1)),
              ("diversity", "diversity (generated / real)", (0, None)),
              ("fid", "FID (reference-classifier features)", (0, None)),
              ("seam_ratio", "edges on a generator token grid, worst grid\n(dashed: real)",
               (0, None)))
    if "nuclei_per_patch" in records[-1]:
        panels += (("nuclei_per_patch", "haematoxylin nuclei per patch\n(dashed: real)",
                    (0, None)),)
    figure, axes = plt.subplots(1, len(panels), figsize=(3.7 * len(panels), 3.4))
    for axis, (key, label, limits) in zip(axes, panels):
        axis.plot(x, [r.get(key, float("nan")) for r in records], marker="o")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("iteration")
        axis.set_ylim(*limits)
        real = records[-1].get(f"{key}_real")
        if real is not None:
            axis.axhline(real, linestyle="--", color="grey")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def side_by_side(grids, gap=6):
    import numpy as np

    height = max(g.shape[0] for g in grids)
    padded = [np.pad(g, ((0, height - g.shape[0]), (0, gap), (0, 0)), constant_values=255)
              for g in grids]
    return np.concatenate(padded, axis=1)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
