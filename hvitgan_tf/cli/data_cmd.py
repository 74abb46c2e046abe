"""``hvitgan-tf data``: look at a data source before training on it (docs/method.md §8).

``inspect`` prints splits, class counts, image size and dtype, and for image files what they
hold when it is not 8-bit RGB and what they are converted to (a table, or ``--json``);
``preview`` writes a labelled grid of real patches, one row per class. Both open the source
exactly as ``train`` does (same options, same subset rules), so what they show is what trains.
TensorFlow is imported inside the commands only.
"""
from __future__ import annotations

import json

import click

from hvitgan_tf.cli.runtime import TFCommand
from hvitgan_tf.cli.options import data_options, open_data_source
from hvitgan_tf.data.forms import SOURCE_FORMS, SPLIT_NAMES

_FORMS_HELP = "\n".join(f"  {form:<21} {about}" for form, about in SOURCE_FORMS.items())


@click.group(help=f"""Inspect and preview datasets.

\b
Data sources (--data):
{_FORMS_HELP}

Sources without their own splits (demo, folder, tfrecord) get a seeded stratified
80/10/10 train/validation/test split. --fraction/--limit with --seed subset the training
split only.""")
def data():
    pass


def _table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for row in (header, *rows):
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(cell).rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def format_description(info: dict) -> str:
    """The human-readable form of ``DataSource.describe()``."""
    size = info["native_image_size"]
    read_as = f"{size}x{size}x3 {info['stored_dtype']}" if size else \
        f"varying sizes, 3 channels, {info['stored_dtype']}"
    # Image files that are not 8-bit RGB: say what was found and what it became.
    kinds = info.get("file_kinds") or []
    converted = [kind for kind in kinds if kind["converted_to"]]
    stored = read_as
    if converted:
        found = ", ".join(f"{kind['count']} {kind['found']}" for kind in kinds)
        stored = (f"{size}x{size} px" if size else "varying sizes") + f": {found}; read as " + (
            f"{size}x{size}x3 {info['stored_dtype']}" if size else info["stored_dtype"])
    subset = info["subset"]
    if subset is None:
        subset_text = "none (whole training split)"
    elif subset["limit"] is not None:
        subset_text = f"--limit {subset['limit']}, seed {subset['seed']} (training split only)"
    else:
        subset_text = (f"--fraction {subset['fraction']}, seed {subset['seed']} "
                       "(training split only)")
    fields = [
        ("Data source", info["spec"]),
        ("About", info["description"]),
        ("Location", info["location"]),
        ("Classes", f"{info['num_classes']}: {', '.join(info['class_names'])}"),
        ("Stored as", f"{stored} (served as {info['served_as']})"),
        ("Converted", "; ".join(f"{kind['count']} {kind['found']} to {kind['converted_to']}, "
                                f"e.g. {kind['example']}" for kind in converted) or None),
        ("Splits", info["split_rule"]),
        ("Subset", subset_text),
    ]
    if info["skipped"]:
        named = "; ".join(f"{s['item']}: {s['reason']}" for s in info["skipped"][:5])
        more = len(info["skipped"]) - 5
        fields.append(("Skipped", f"{len(info['skipped'])} bad input(s): {named}"
                       + (f"; and {more} more" if more > 0 else "")))
    width = max(len(name) for name, _ in fields)
    lines = [f"{name:<{width}}  {value}" for name, value in fields if value is not None]
    header = ["split", "total", *info["class_names"]]
    rows = [[split, values["num_examples"], *values["class_counts"].values()]
            for split, values in info["splits"].items()]
    return "\n".join(lines) + "\n\n" + _table(header, rows)


@data.command(cls=TFCommand)
@data_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the description as JSON (machine-readable) instead of a table.")
def inspect(data, data_dir, fraction, limit, seed, skip_bad, as_json):
    """Splits, examples per class, image size and dtype of a data source."""
    source = open_data_source(data=data, data_dir=data_dir, fraction=fraction, limit=limit,
                              seed=seed, skip_bad=skip_bad)
    info = source.describe()
    click.echo(json.dumps(info, indent=2) if as_json else format_description(info))


@data.command(cls=TFCommand)
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="PNG file to write (written atomically: temporary name, then renamed).")
@click.option("--per-class", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Patches shown per class (one row per class).")
@click.option("--split", type=click.Choice(SPLIT_NAMES), default="train", show_default=True,
              help="Which split to draw the patches from.")
def preview(data, data_dir, fraction, limit, seed, skip_bad, out, per_class, split):
    """Write a labelled grid of real patches, one row per class.

    The patches are a seeded random draw (--seed) from the split, at their stored size.
    """
    source = open_data_source(data=data, data_dir=data_dir, fraction=fraction, limit=limit,
                              seed=seed, skip_bad=skip_bad)
    from hvitgan_tf.data.preview import write_preview

    result = write_preview(source, out, split=split, per_class=per_class, seed=seed)
    shown = ", ".join(f"{count} {name}" for name, count in result["shown"].items())
    click.echo(f"Wrote a preview of {source.spec} ({split} split: {shown}) to {result['path']}")
