"""``hvitgan-tf export``: a training run -> a versioned SavedModel for TF Serving (docs/method.md
§7)."""
import os

import click

from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.sampling.plan import DEFAULT_THRESHOLD


@click.command(cls=TFCommand, context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--checkpoint", default="best", metavar="best|last|PATH",
              help="Weights to export: best (lowest validation FID; the newest when no FID was "
                   "computed), last, or a .weights.h5 file of this run.")
@click.option("--name", default="hvitgan",
              help="Model name: the folder under --export-dir and TF Serving's MODEL_NAME.")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Integer version to write (default: the highest existing + 1). An existing "
                   "version is never overwritten.")
@click.option("--export-dir", type=click.Path(file_okay=False), default="saved_models",
              help="Base folder of exported models: EXPORT_DIR/NAME/VERSION/.")
def export(run_dir, checkpoint, name, version, export_dir):
    """Export RUN_DIR's EMA generator and class head as a TF Serving SavedModel.

    Signatures: generate (also serving_default; label, seed, truncation -> images,
    probabilities, confidence), classify (images -> probabilities, label), features and
    metadata. Class names and the model config travel in assets.extra/hvitgan.json.

    \b
    Examples:
      hvitgan-tf export runs/demo
      hvitgan-tf export runs/pcam --checkpoint last --name pcam --version 7
    """
    from hvitgan_tf.export import export_run, read_export_metadata
    from hvitgan_tf.exported_model import describe
    from hvitgan_tf.fileio import NoSpaceLeft

    try:
        path = export_run(run_dir, export_dir=export_dir, name=name, version=version,
                          checkpoint=checkpoint)
    except NoSpaceLeft as error:
        raise error.then("free some space and run the same command again") from None
    metadata = read_export_metadata(path)
    base = os.path.dirname(path)
    record = metadata["checkpoint"]
    iteration = f", iteration {record['iteration']}" if "iteration" in record else ""
    click.echo(f"exported {describe(metadata)}")
    click.echo(f"classes:      {', '.join(metadata['class_names'])}")
    click.echo(f"checkpoint:   {record['path']} ({record.get('which', checkpoint)}{iteration})")
    click.echo("signatures:   generate (= serving_default), classify, features, metadata")
    click.echo(f"saved model:  {path}")
    click.echo(f"serve:        docker run -p 8501:8501 -p 8500:8500 -v {base}:/models/{name} "
               f"-e MODEL_NAME={name} tensorflow/serving")
    click.echo(f"request:      curl -d '{{\"signature_name\": \"generate\", \"inputs\": "
               f"{{\"label\": [0], \"seed\": [1], \"truncation\": [1.0]}}}}' "
               f"http://localhost:8501/v1/models/{name}:predict")
    click.echo(f"sample:       hvitgan-tf sample --model {base} --threshold "
               f"{DEFAULT_THRESHOLD:g} --per-class 100 --out synthetic")
