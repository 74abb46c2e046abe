"""``hvitgan-tf evaluate``: FID/KID of a generator or a sample folder, and classification
metrics of a model's ``classify`` signature, against one split of a dataset (docs/method.md §9).

Parses and checks options, then calls ``hvitgan_tf.evaluation.evaluate``; TensorFlow is
imported inside the command only.
"""
from __future__ import annotations

import json

import click

from hvitgan_tf.cli.options import data_options, feature_extractor_help, open_data_source
from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.data.forms import SPLIT_NAMES
from hvitgan_tf.errors import UserError

_OFFLINE_HINT = (
    "Without InceptionV3 weights, use a domain feature extractor that works offline: "
    "--features classifier:SAVED_MODEL, e.g. the GAN's own export "
    "(--features classifier:saved_models/hvitgan/1, its discriminator's class-token features) "
    "or a classifier written by export_classifier. FIDs from different extractors are not "
    "comparable with each other."
)


def feature_extractor(name: str, batch_size: int):
    """``get_feature_extractor`` whose missing-weights error also names the offline option."""
    from hvitgan_tf.metrics.feature_extractors import get_feature_extractor

    try:
        return get_feature_extractor(name, batch_size=batch_size)
    except UserError as error:
        if name.partition(":")[0] == "inception":
            raise UserError(f"{error}\n{_OFFLINE_HINT}") from None
        raise


_SEED_HELP = ("Seed of the --fraction/--limit draw and of the generated (or subsampled) images.")


@click.command(cls=TFCommand, context_settings={"show_default": True})
@click.option("--model", "model", default=None, metavar="SAVED_MODEL",
              help="An exported model: saved_models/NAME (highest version) or a version "
                   "folder. A GAN gets FID/KID of its 'generate' samples and metrics of its "
                   "'classify' head; a classifier export gets the metrics.")
@click.option("--samples", default=None, type=click.Path(file_okay=False),
              help="A folder of generated images (OUT/<class>/<id>.png, as 'hvitgan-tf "
                   "sample' writes) to score by FID/KID instead of generating.")
@data_options(seed_help=_SEED_HELP)
@click.option("--split", type=click.Choice(SPLIT_NAMES), default="test",
              help="The real split to compare with and classify.")
@click.option("--features", "features", default="inception", metavar="EXTRACTOR",
              help=feature_extractor_help("FID/KID features"))
@click.option("--num-samples", type=click.IntRange(min=2), default=2000,
              help="Images generated for FID/KID (labels in the split's class proportions); "
                   "with --samples, at most this many are read (a seeded random subset).")
@click.option("--truncation", type=click.FloatRange(min=0), default=1.0,
              help="Truncation psi of the generated latents (docs/method.md §6.1).")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Compare at this size (default: the model's, or the sample images').")
@click.option("--fid/--no-fid", "do_fid", default=True, help="Compute FID/KID.")
@click.option("--classification/--no-classification", "do_classification", default=True,
              help="Compute classification metrics with the model's 'classify' signature.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64,
              help="Images per network call.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where real-data feature statistics are cached (default: "
                   "$HVITGAN_TF_CACHE or ~/.cache/hvitgan-tf/reference-statistics).")
@click.option("--no-cache", is_flag=True, help="Recompute the real statistics, store nothing.")
@click.option("--refresh-cache", is_flag=True, help="Recompute and replace cached statistics.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Also write the results as JSON to this file.")
def evaluate(model, samples, data, data_dir, fraction, limit, seed, skip_bad, split, features,
             num_samples, truncation, image_size, do_fid, do_classification, batch_size,
             cache_dir, no_cache, refresh_cache, out):
    """FID/KID and classification metrics against a dataset split.

    \b
    Examples:
      hvitgan-tf evaluate --model saved_models/hvitgan --split test \\
          --features classifier:saved_models/hvitgan/1 --out results.json
      hvitgan-tf evaluate --samples synthetic --data pcam-h5:/data/pcam \\
          --features inception:/weights/inception_v3_notop.h5
      hvitgan-tf evaluate --model saved_models/resnet34 --no-fid --data pcam-h5:/data/pcam
    """
    if not model and not samples:
        raise UserError("give --model SAVED_MODEL (an exported GAN or classifier) and/or "
                        "--samples DIR (generated images to score by FID/KID)")
    if not do_fid and not do_classification:
        raise UserError("--no-fid and --no-classification leave nothing to evaluate")
    if samples and not do_fid:
        raise UserError("--samples are scored by FID/KID; drop --no-fid")
    if samples and model and do_fid:
        raise UserError("--model and --samples both give images to score by FID; pass "
                        "--no-fid to use --model for the classification metrics only")
    source = open_data_source(data=data, data_dir=data_dir, fraction=fraction, limit=limit,
                              seed=seed, skip_bad=skip_bad)
    from hvitgan_tf.evaluation import evaluate as ev
    from hvitgan_tf.exported_model import resolve_model_dir
    from hvitgan_tf.metrics.reference_statistics import default_cache_dir

    cache = None if no_cache else (cache_dir or default_cache_dir())
    results = {}
    generates = classifies = False
    if model:
        model = resolve_model_dir(model)
        generates, classifies = _signatures(model)
        if do_classification and not classifies:
            raise UserError(f"{model} has no 'classify' signature; pass --no-classification")
        if do_fid and not samples and not generates:
            if not do_classification:
                raise UserError(f"{model} has no 'generate' signature, so there is nothing to "
                                "score by FID; use --samples DIR or drop --fid")
            click.echo(f"note: {model} has no 'generate' signature (a classifier?): "
                       "skipping FID/KID", err=True)
    if do_fid and (samples or generates):
        extractor = feature_extractor(features, batch_size)
        if samples:
            click.echo(f"FID/KID of {samples} against the {split} split of {source.spec} "
                       f"({extractor.name} features) ...")
            results["fid"] = ev.folder_fid(
                samples, source, split, extractor, num_samples=num_samples, seed=seed,
                batch_size=batch_size, image_size=image_size, cache_dir=cache,
                refresh=refresh_cache, skip_bad=skip_bad)
        else:
            click.echo(f"FID/KID of {num_samples} images from {model} (truncation "
                       f"{truncation:g}) against the {split} split of {source.spec} "
                       f"({extractor.name} features) ...")
            results["fid"] = ev.generator_fid(
                model, source, split, extractor, num_samples=num_samples,
                truncation=truncation, seed=seed, batch_size=batch_size, image_size=image_size,
                cache_dir=cache, refresh=refresh_cache)
    if do_classification and model:
        click.echo(f"classifying the {split} split of {source.spec} with {model} ...")
        results["classification"] = ev.classifier_metrics(model, source, split,
                                                          batch_size=batch_size)
    click.echo("")
    click.echo(format_results(results))
    if out:
        from hvitgan_tf.fileio import atomic_open

        with atomic_open(out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
            handle.write("\n")
        click.echo(f"\nwrote {out}")


def _signatures(model_dir):
    """``(has generate, has classify)``, from the export's metadata when it lists them."""
    from hvitgan_tf.exported_model import load_saved_model, read_metadata

    names = read_metadata(model_dir).get("signatures")
    if not names:
        names = list(load_saved_model(model_dir).signatures)
    return "generate" in names, "classify" in names


def _table(rows, indent="  "):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(indent + "  ".join(str(cell).ljust(width) if i == 0 else
                                        str(cell).rjust(width)
                                        for i, (cell, width) in enumerate(zip(row, widths)))
                     .rstrip() for row in rows)


def format_results(results: dict) -> str:
    """The human-readable report of ``evaluate``'s results."""
    parts = []
    fid = results.get("fid")
    if fid:
        what = (f"{fid['num_generated']} images from {fid['model']} (truncation "
                f"{fid['truncation']:g})" if fid["what"] == "generator"
                else f"{fid['num_generated']} images from {fid['samples']}")
        parts.append(
            f"Image quality: {what}\n"
            f"  vs the {fid['split']} split of {fid['data']} ({fid['num_real']} images), "
            f"{fid['image_size']} px, features {fid['features']} ({fid['feature_dim']}-d)\n"
            + _table([["FID", f"{fid['fid']:.4f}"],
                      ["KID", f"{fid['kid']:.5f} ± {fid['kid_std']:.5f}"]]))
        if fid.get("mean_confidence"):
            parts[-1] += "\n  class-head confidence in the requested label (mean): " + \
                ", ".join(f"{k} {v:.3f}" for k, v in fid["mean_confidence"].items())
    cls = results.get("classification")
    if cls:
        names = cls["class_names"]
        positive = (f", positive class {cls['positive_class']} (label 1)"
                    if cls["positive_class"] else "")
        titles = {"accuracy": "accuracy", "auc": "ROC AUC", "sensitivity": "sensitivity",
                  "specificity": "specificity"}
        metric_rows = [[titles.get(k, k), f"{v:.4f}"] for k, v in cls["metrics"].items()]
        matrix = [["true \\ predicted", *names]] + [
            [name, *row] for name, row in zip(names, cls["confusion_matrix"])]
        parts.append(
            f"Classification: {cls['model']} ('classify')\n"
            f"  on the {cls['split']} split of {cls['data']} ({cls['num_examples']} images, "
            f"{cls['image_size']} px){positive}\n"
            + _table(metric_rows) + "\n  confusion matrix (rows: true class):\n"
            + _table(matrix, indent="    "))
    return "\n\n".join(parts)
