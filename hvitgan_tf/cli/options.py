"""Reusable click options: how every command selects its data (docs/method.md §8).

    @click.command()
    @data_options
    def train(data, data_dir, fraction, limit, seed, skip_bad, ...):
        source = open_data_source(data=data, data_dir=data_dir, fraction=fraction,
                                  limit=limit, seed=seed, skip_bad=skip_bad)

``--seed`` is the seed of the training subset; a command may use the same value for its own
randomness (one seed per run). No TensorFlow here: ``open_data_source`` imports the data layer
only when it is called, so ``--help`` stays fast.
"""
from __future__ import annotations

import click

from hvitgan_tf.data.forms import SOURCE_FORMS, check_subset_options, parse_source_spec

#: The keyword arguments ``data_options`` adds to a command, in order.
DATA_OPTION_NAMES = ("data", "data_dir", "fraction", "limit", "seed", "skip_bad")

_DATA_HELP = ("Where the labelled patches come from: " + " | ".join(SOURCE_FORMS)
              + ". 'hvitgan-tf data --help' describes each form.")


_SEED_HELP = "Seed of the --fraction/--limit draw (same seed, same subset)."


def data_options(command=None, *, seed_help=_SEED_HELP):
    """Add ``--data``, ``--data-dir``, ``--fraction``, ``--limit``, ``--seed``, ``--skip-bad``.

    Used bare (``@data_options``) or with a command-specific ``--seed`` help
    (``@data_options(seed_help=...)``) where the seed also drives more than the subset.
    """
    if command is None:
        return lambda cmd: data_options(cmd, seed_help=seed_help)
    options = [
        click.option("--data", "data", default="demo", show_default=True, metavar="SOURCE",
                     help=_DATA_HELP),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="TensorFlow Datasets data directory holding an existing prepared copy "
                          "(tfds: sources only; default $TFDS_DATA_DIR or "
                          "~/tensorflow_datasets). Nothing is ever downloaded implicitly."),
        click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=None,
                     metavar="F",
                     help="Train on a stratified random fraction F in (0, 1] of the training "
                          "split; validation and test are used whole."),
        click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Train on a stratified random subset of N training examples (the "
                          "PCam paper: --limit 32768 of 262,144). At least one per class; not "
                          "with --fraction."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help=seed_help),
        click.option("--skip-bad", is_flag=True, default=False,
                     help="Leave out unreadable or too small (< 8 px) images/records "
                          "(folder:, tfrecord:) with a warning and a count, instead of "
                          "stopping at the first."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_data_source(*, data="demo", data_dir=None, fraction=None, limit=None, seed=0,
                     skip_bad=False, **open_kwargs):
    """``hvitgan_tf.data.open_source`` from the values of ``data_options``.

    The option-only checks run before TensorFlow is imported, so a wrong combination fails fast;
    ``open_kwargs`` (e.g. ``split_fractions``) pass through to ``open_source``.
    """
    parse_source_spec(data)
    check_subset_options(fraction, limit)
    from hvitgan_tf.data import open_source

    return open_source(data, data_dir=data_dir, fraction=fraction, limit=limit, seed=seed,
                       skip_bad=skip_bad, **open_kwargs)


def feature_extractor_help(lead: str) -> str:
    """``lead``, then every registered FID/KID feature extractor with its usage, for --help.

    The registry is imported here, not with this module: it loads NumPy and Pillow, which
    ``hvitgan-tf data`` does not need.
    """
    from hvitgan_tf.metrics.feature_extractors import available_feature_extractors

    kinds = sorted(available_feature_extractors().items())
    return f"{lead}: " + "; ".join(f"{kind} ({usage})" for kind, usage in kinds) + "."
