"""``hvitgan-tf sample``: validate the options, then call ``hvitgan_tf.sampling.sample``.

Every check that needs no model runs before TensorFlow starts (threshold, ψ, quotas, classes,
the ``--model`` folder, the ``--out`` folder), so a mistake costs a second, not a model load.
"""
import os

import click

from hvitgan_tf.sampling.plan import (DEFAULT_ATTEMPTS_PER_IMAGE, DEFAULT_BATCH_SIZE,
                                      DEFAULT_SHARD_SIZE, DEFAULT_THRESHOLD)

FORMAT_CHOICES = {"png": ("png",), "tfrecord": ("tfrecord",), "both": ("png", "tfrecord")}


@click.command(context_settings={"show_default": True})
@click.option("--model", "model_path", default="saved_models/hvitgan", metavar="PATH",
              help="Exported model: saved_models/NAME (its highest version) or "
                   "saved_models/NAME/VERSION.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="synthetic",
              help="Output folder: OUT/<class>/<id>.png and/or OUT/samples-*.tfrecord, plus "
                   "manifest.csv. Rerunning into the same folder resumes.")
@click.option("--per-class", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep N images of every selected class.")
@click.option("--num", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep N images in total, split by --class-ratio.")
@click.option("--class-ratio", default=None, metavar="RATIO",
              help="How --num is split: '0.5,0.5' (in --classes order) or "
                   "'tumor=0.7,normal=0.3'.  [default: uniform]")
@click.option("--classes", default=None, metavar="NAMES",
              help="Comma-separated class names or ids to sample.  [default: all]")
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD,
              help="Keep an image only if the model's class head gives its label at least this "
                   "probability; in [0, 1).")
@click.option("--truncation", type=float, default=1.0, metavar="PSI",
              help="Truncate the noise at +-PSI (>= 0; smaller: more typical images, less "
                   "variety; 0: one image per class).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE,
              help="Images generated per model call (does not change which images are kept).")
@click.option("--seed", type=int, default=0,
              help="Run seed: the same seed gives byte-identical files.")
@click.option("--format", "output_format", type=click.Choice(sorted(FORMAT_CHOICES)),
              default="png", help="PNG folder, TFRecord shards, or both.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, metavar="N",
              help="Give up on a class after N generated images (per class, counting earlier "
                   "runs into the same folder).  [default: "
                   f"{DEFAULT_ATTEMPTS_PER_IMAGE} x the class's quota]")
@click.option("--shard-size", type=click.IntRange(min=1), default=DEFAULT_SHARD_SIZE,
              metavar="N",
              help="Records per TFRecord shard.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, metavar="PNG",
              help="Also save a grid of kept vs rejected samples per class to this file.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def sample(ctx, model_path, out_dir, per_class, num, class_ratio, classes, threshold,
           truncation, batch_size, seed, output_format, max_attempts, shard_size, preview,
           quiet):
    """Write class-balanced, confidence-filtered synthetic patches from an exported model.

    For each selected class, images are generated from truncated noise until its quota
    (--per-class, or its share of --num) have a class-head confidence >= --threshold, or
    --max-attempts is used up (exit code 3 then, after writing what was kept). A rerun into
    the same --out continues where the last one stopped; the same --seed always gives the
    same images.

    \b
    Examples:
      hvitgan-tf sample --threshold 0.8 --per-class 500 --out synthetic
      hvitgan-tf sample --model saved_models/hvitgan/3 --num 1000 \\
          --class-ratio tumor=0.7,normal=0.3 --format both --out synthetic
    """
    from hvitgan_tf._backend import start_tensorflow
    from hvitgan_tf.exported_model import ExportedModel, describe, read_export_metadata
    from hvitgan_tf.sampling.plan import plan_quotas
    from hvitgan_tf.sampling.report import format_table
    from hvitgan_tf.sampling.sampler import QuotaNotReached, check_settings
    from hvitgan_tf.sampling.sampler import sample as run_sampling

    formats = FORMAT_CHOICES[output_format]
    check_settings(threshold, truncation, batch_size, formats, max_attempts, shard_size, seed)
    metadata = read_export_metadata(model_path)
    quotas = plan_quotas(metadata["class_names"], per_class=per_class, num=num,
                         class_ratio=class_ratio, classes=classes)

    start_tensorflow(bool((ctx.find_root().obj or {}).get("verbose")))
    model = None
    if preview:
        model = ExportedModel(metadata["model_dir"], metadata)
    wanted = ", ".join(f"{metadata['class_names'][label]} {quota}"
                       for label, quota in quotas.items())
    click.echo(f"sampling {describe(metadata)}: {wanted}; threshold {threshold:g}, "
               f"truncation {truncation:g}, seed {seed} -> {out_dir}", err=True)
    report = run_sampling(
        metadata["model_dir"], out_dir, per_class=per_class, num=num, class_ratio=class_ratio,
        classes=classes, threshold=threshold, truncation=truncation, batch_size=batch_size,
        seed=seed, formats=formats, max_attempts=max_attempts, shard_size=shard_size,
        progress=not quiet, model=model)

    click.echo(format_table(report))
    click.echo(_rates(report))
    if preview:
        from hvitgan_tf.sampling.report import preview_kept_vs_rejected

        preview_kept_vs_rejected(model, preview, threshold=threshold, truncation=truncation,
                                 seed=seed, labels=list(quotas))
        click.echo(f"preview:    {os.path.abspath(preview)}")
    for line in _written(report):
        click.echo(line)
    if not report.complete:
        raise QuotaNotReached(report.shortfall_message())


def _rates(report):
    if not report.generated:
        return (f"nothing to generate: {report.out_dir} already holds every requested image "
                "(raise --per-class/--num to add more)"
                if report.complete else
                f"nothing generated: every short class has used its --max-attempts")
    return (f"generated {report.generated} images in {report.generate_seconds:.1f} s of model "
            f"time ({report.generated_per_second:.1f}/s); wrote {report.written} in "
            f"{report.write_seconds:.1f} s of writer time ({report.written_per_second:.1f}/s, "
            f"generation waited {report.wait_seconds:.1f} s for it); {report.seconds:.1f} s "
            "in all")


def _written(report):
    out = report.out_dir
    kept = sum(entry.kept for entry in report.classes)
    lines = []
    if "png" in report.formats:
        lines.append(f"images:     {out}/<class>/*.png ({report.pngs} new, {kept} of the "
                     "requested classes in all)")
    if "tfrecord" in report.formats:
        shards = ", ".join(report.shards) if report.shards else "no new shard"
        lines.append(f"tfrecords:  {out}/samples-*.tfrecord ({shards})")
    lines.append(f"manifest:   {report.manifest}")
    read_back = []
    if "png" in report.formats:
        read_back.append(f"--data folder:{out}")
    if "tfrecord" in report.formats:
        read_back.append(f"--data 'tfrecord:{out}/*.tfrecord'")
    lines.append(f"read with:  {'  or  '.join(read_back)}")
    return lines
