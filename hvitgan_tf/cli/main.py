"""Entry point of the ``hvitgan-tf`` command.

Commands are registered by dotted path and imported on first use (``LazyGroup``): TensorFlow takes
seconds to import and ``--help`` / ``--version`` should not pay for it. Library code raises
``UserError`` for mistakes the user can fix; ``main`` prints those as one line and exits 2.
"""
import importlib
import os
import sys

import click

from hvitgan_tf import __version__
from hvitgan_tf.errors import UserError

# name -> "module:attribute" of a click command or group; the order is the order in --help.
COMMANDS = {
    "data": "hvitgan_tf.cli.data_cmd:data",
    "model": "hvitgan_tf.cli.model_cmd:model",
    "train": "hvitgan_tf.cli.train_cmd:train",
    "export": "hvitgan_tf.cli.export_cmd:export",
    "sample": "hvitgan_tf.cli.sample_cmd:sample",
    "evaluate": "hvitgan_tf.cli.evaluate_cmd:evaluate",
    "benchmark": "hvitgan_tf.cli.benchmark_cmd:benchmark",
}

SHORT_HELP = {
    "data": "Inspect and preview datasets.",
    "model": "Describe the generator and discriminator of a preset.",
    "train": "Train the GAN (WGAN-GP + weighted auxiliary classification).",
    "export": "Export a training run as a TF Serving SavedModel.",
    "sample": "Write class-balanced, confidence-filtered synthetic patches.",
    "evaluate": "FID/KID of generated images and classification metrics.",
    "benchmark": "Augmentation experiment: classifiers with vs without synthetic data.",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when they are invoked."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return list(self.lazy_commands) + sorted(super().list_commands(ctx))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as error:
            # One line and the UserError's exit code, also under click's CliRunner in tests.
            click_error = click.ClickException(str(error))
            click_error.exit_code = error.exit_code
            raise click_error from None

    def format_commands(self, ctx, formatter):
        # Listing the commands must not import them: use the short help kept here.
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.lazy_commands]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def quiet_tensorflow(verbose):
    """Silence TensorFlow's C++ and Python logging unless ``--verbose`` (must run before import)."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="hvitgan-tf")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's own log messages.")
@click.pass_context
def cli(ctx, verbose):
    """hvitgan-tf: train a pure-transformer conditional GAN on histopathology patches and
    turn it into confidence-filtered synthetic training data.

    \b
    Typical flow:
      hvitgan-tf train --out runs/demo             # built-in demo data, small model
      hvitgan-tf sample --threshold 0.8 --out synthetic
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    quiet_tensorflow(verbose)


def main(argv=None):
    """Console-script entry point: run the CLI, turning ``UserError`` into a clean exit 2."""
    try:
        cli.main(args=argv, prog_name="hvitgan-tf", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except UserError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
