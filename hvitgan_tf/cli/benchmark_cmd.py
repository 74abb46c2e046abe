"""``hvitgan-tf benchmark``: the augmentation experiment of docs/method.md §9 (the paper's Table 1).

Parses and checks options, works out the image size and the GAN head's origin, then calls
``hvitgan_tf.evaluation.benchmark.run_benchmark``. TensorFlow is imported inside the command.
"""
from __future__ import annotations

import os

import click

from hvitgan_tf.cli.options import data_options, open_data_source
from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.benchmark_arms import (ABLATIONS, DEFAULT_MODELS, ClassifierOptions,
                                                  Recipe, check_models, plan_arms)
from hvitgan_tf.sampling.plan import DEFAULT_THRESHOLD


def _names(text):
    return [part.strip() for part in str(text or "").split(",") if part.strip()]


_SEED_HELP = ("Seed of the --fraction/--limit draw, of the synthetic images and of the first "
              "repeat (repeat i uses seed + i).")


@click.command(cls=TFCommand, context_settings={"show_default": True})
@data_options(seed_help=_SEED_HELP)
@click.option("--models", default=",".join(DEFAULT_MODELS), metavar="NAMES",
              help="Comma-separated classifiers: resnet34, resnet50_cbam, densenet169, "
                   "hvitgan_head (the GAN discriminator's class head, see --gan-run).")
@click.option("--synthetic", default=None, type=click.Path(file_okay=False),
              help="An existing folder of synthetic images (OUT/<class>/*.png from "
                   "'hvitgan-tf sample') for the '+ Aug' rows.")
@click.option("--model", "model", default=None, metavar="SAVED_MODEL",
              help="Or: an exported GAN to generate the synthetic sets from (into "
                   "OUT/synthetic/), with --threshold, --truncation, --synthetic-per-class.")
@click.option("--threshold", type=click.FloatRange(0, 1, max_open=True),
              default=DEFAULT_THRESHOLD,
              help="Selective augmentation: keep a generated image if its class-head "
                   "confidence is at least this (0: no selection).")
@click.option("--truncation", type=click.FloatRange(min=0), default=1.0,
              help="Truncation psi of the generated latents.")
@click.option("--synthetic-per-class", type=click.IntRange(min=1), default=None,
              help="Synthetic images per class (default: the real training patches divided "
                   "by the number of classes, i.e. as many synthetic as real, balanced).")
@click.option("--model-no-cp", default=None, metavar="SAVED_MODEL",
              help="A second exported GAN trained with --no-class-projection, for the "
                   "no-CP ablation rows.")
@click.option("--ablations", default="", metavar="NAMES",
              help="Extra '+ Aug' rows: no-sa (threshold 0), no-cp (--model-no-cp), "
                   "no-cp-no-sa (both), or all.")
@click.option("--gan-run", default=None, type=click.Path(file_okay=False),
              help="The GAN's training run: hvitgan_head starts from its discriminator "
                   "weights (both arms fine-tune it). Without it hvitgan_head trains the "
                   "discriminator architecture from scratch.")
@click.option("--gan-checkpoint", default="best", metavar="best|last|FILE",
              help="Which checkpoint of --gan-run.")
@click.option("--repeats", type=click.IntRange(min=1), default=5,
              help="Seeds per row (seed, seed+1, ...); the table shows mean ± std.")
@click.option("--epochs", type=click.IntRange(min=1), default=Recipe.epochs,
              help="Passes over each training set.")
@click.option("--batch-size", type=click.IntRange(min=1), default=Recipe.batch_size,
              help="Training batch.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=Recipe.learning_rate,
              help="Adam learning rate (the same for every model).")
@click.option("--augment/--no-augment", default=Recipe.augment,
              help="Random rot90 + flip of training images (the same for every model).")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Train and test at this size (default: the GAN's size, else the "
                   "synthetic images', else the data's native size). Real and synthetic "
                   "images are both resized by the data pipeline's rule.")
@click.option("--width-multiplier", type=click.FloatRange(min=0, min_open=True),
              default=ClassifierOptions.width_multiplier,
              help="Scale the ResNets' widths (e.g. 0.25 for CPU runs).")
@click.option("--small-input", is_flag=True,
              help="ResNets: CIFAR-style stem (3x3 stride 1, no max-pool) for small patches.")
@click.option("--pretrained", is_flag=True,
              help="Start DenseNet169 from ImageNet weights (Keras's cache or --weights); "
                   "the ResNets have no published weights.")
@click.option("--weights", "weights_path", default=None, type=click.Path(dir_okay=False),
              help="DenseNet169 ImageNet weights file (with --pretrained).")
@click.option("--out", "out_dir", default="benchmark", type=click.Path(file_okay=False),
              help="Output folder (results.md/.csv/.json, runs.csv, roc.png, bars.png, "
                   "runs/, synthetic/). Rerunning skips finished runs.")
def benchmark(data, data_dir, fraction, limit, seed, skip_bad, models, synthetic, model,
              threshold, truncation, synthetic_per_class, model_no_cp, ablations, gan_run,
              gan_checkpoint, repeats, epochs, batch_size, lr, augment, image_size,
              width_multiplier, small_input, pretrained, weights_path, out_dir):
    """Classifiers trained on real data only vs real + synthetic data, tested on the test
    split: accuracy, ROC AUC, sensitivity, specificity as mean ± std over --repeats.

    \b
    Examples:
      hvitgan-tf benchmark --model saved_models/hvitgan --gan-run runs/demo \\
          --models resnet34,hvitgan_head --repeats 2 --epochs 2 --out benchmark
      hvitgan-tf benchmark --data tfds:patch_camelyon --limit 32768 --repeats 5 \\
          --model saved_models/hvitgan --threshold 0.8 --gan-run runs/pcam --out table1
    """
    from hvitgan_tf.evaluation import benchmark as bench

    model_names = _names(models)
    ablation_names = list(ABLATIONS) if _names(ablations) == ["all"] else _names(ablations)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, learning_rate=lr, augment=augment)
    options = ClassifierOptions(width_multiplier=width_multiplier, small_input=small_input,
                                pretrained=pretrained, weights_path=weights_path)
    check_models(model_names, options)

    source = open_data_source(data=data, data_dir=data_dir, fraction=fraction, limit=limit,
                              seed=seed, skip_bad=skip_bad)
    n_train = source.num_examples("train")
    per_class = synthetic_per_class or max(1, round(n_train / source.num_classes))
    arms = plan_arms(out_dir, synthetic_dir=synthetic, model_dir=model,
                     model_no_cp=model_no_cp, threshold=threshold, truncation=truncation,
                     per_class=per_class, seed=seed, ablations=ablation_names)

    gan_head = None
    export_metadata = {}
    if model:
        from hvitgan_tf.exported_model import read_metadata

        export_metadata = read_metadata(arms[1].plan.model_dir)
    if "hvitgan_head" in model_names:
        gan_head = _gan_head(gan_run, gan_checkpoint, export_metadata, model)
    size = _image_size(image_size, export_metadata, gan_head, synthetic, source)
    if "hvitgan_head" in model_names:
        if gan_head is None:
            from hvitgan_tf.evaluation.gan_head import head_for_image_size

            gan_head = head_for_image_size(size, source.num_classes)
        _check_gan_classes(gan_head, source)

    data_info = {"spec": source.spec, "fraction": fraction, "limit": limit, "seed": seed}
    summary = bench.run_benchmark(
        out_dir, source, models=model_names, arms=arms, recipe=recipe, repeats=repeats,
        image_size=size, seed=seed, options=options, gan_head=gan_head, data_info=data_info,
        log=click.echo)

    with open(summary["files"]["markdown"], encoding="utf-8") as handle:
        click.echo("\n" + handle.read().rstrip())
    click.echo(f"\nfinished in {summary['seconds']:.0f} s; wrote:")
    for key in ("markdown", "csv", "runs_csv", "json", "roc", "bars"):
        if key in summary["files"]:
            click.echo(f"  {summary['files'][key]}")
    click.echo(f"  {os.path.join(out_dir, 'runs')}/ (one JSON + NPZ per run)")


def _gan_head(gan_run, checkpoint, export_metadata, model):
    """Where hvitgan_head comes from: a run's weights, else the export's architecture."""
    from hvitgan_tf.evaluation import gan_head as heads

    if gan_run:
        click.echo(f"own class head: loading the discriminator of {gan_run} ({checkpoint})")
        return heads.head_from_run(gan_run, checkpoint)
    if export_metadata.get("model_config"):
        hint = (f" (the export came from {export_metadata['run_dir']})"
                if export_metadata.get("run_dir") else "")
        click.echo(f"note: hvitgan_head trains the GAN's discriminator architecture from "
                   f"scratch; pass --gan-run RUN_DIR{hint} to start from the GAN's weights",
                   err=True)
        return heads.head_from_model_config(
            export_metadata["model_config"], export_metadata.get("class_names") or (),
            origin=f"architecture of {export_metadata.get('model_dir', model)}, from scratch")
    return None


def _image_size(requested, export_metadata, gan_head, synthetic, source):
    if requested:
        return int(requested)
    if export_metadata.get("image_size"):
        return int(export_metadata["image_size"])
    if gan_head is not None:
        return gan_head.image_size
    if synthetic:
        from hvitgan_tf.data import open_source

        native = open_source(f"folder:{synthetic}",
                             split_fractions=(1.0, 0.0, 0.0)).native_image_size
        if native:
            return int(native)
    if source.native_image_size:
        return int(source.native_image_size)
    raise UserError(f"cannot tell which image size to use for {source.spec}; pass "
                    "--image-size")


def _check_gan_classes(head, source):
    names = tuple(head.class_names)
    if names and names != tuple(source.class_names):
        if len(names) != source.num_classes:
            raise UserError(f"the GAN ({head.origin}) has classes {', '.join(names)} but "
                            f"{source.spec} has {', '.join(source.class_names)}")
        click.echo(f"warning: the GAN's class names ({', '.join(names)}) differ from "
                   f"{source.spec}'s ({', '.join(source.class_names)}); labels are matched "
                   "by position", err=True)
