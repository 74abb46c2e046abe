"""``hvitgan-tf model``: describe the networks of a preset (or of a saved model config).

TensorFlow is imported inside the command, after the options are validated, so ``--help`` and
option errors answer immediately.
"""
import json
import pathlib

import click

from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.errors import UserError
from hvitgan_tf.models.config import PRESETS, ModelConfig, preset


@click.group()
def model():
    """Describe the generator and discriminator of a preset."""


@model.command("summary", cls=TFCommand)
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="pcam96",
              show_default=True, help="Named model configuration.")
@click.option("--num-classes", type=click.IntRange(min=2), default=2, show_default=True,
              help="Number of classes (class head width, class embedding rows).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help="A model config JSON (as saved next to a checkpoint) instead of a preset.")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def summary(preset_name, num_classes, config_path, as_json):
    """Per-stage token grids, widths, attention type and parameter counts of G and D.

    \b
    Example:
      hvitgan-tf model summary --preset pcam96 --num-classes 2
    """
    if config_path is not None:
        try:
            config = ModelConfig.from_json(config_path.read_text(encoding="utf-8"))
        except OSError as error:
            raise UserError(f"cannot read model config {config_path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise UserError(f"{config_path} is not JSON: {error}") from None
    else:
        config = preset(preset_name, num_classes)

    from hvitgan_tf.models.summary import describe_model, format_description  # imports TF

    description = describe_model(config)
    if as_json:
        click.echo(json.dumps(description, indent=2))
    else:
        click.echo(format_description(description))
