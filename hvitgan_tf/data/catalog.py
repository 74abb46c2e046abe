"""``open_source``: from a ``--data`` string to the ``DataSource`` that reads it (docs/method.md
§8).

One function for every caller (trainer, evaluation, benchmark, ``hvitgan-tf data``), so the
subset and split rules are applied the same way everywhere.
"""
from __future__ import annotations

from typing import Optional, Sequence

from hvitgan_tf.data.base import DataSource
from hvitgan_tf.data.forms import (DEFAULT_SPLIT_FRACTIONS, DataError, check_split_fractions,
                                   check_subset_options, parse_source_spec)
from hvitgan_tf.data.splitting import check_limit


def open_source(spec: str = "demo", *, data_dir: Optional[str] = None,
                fraction: Optional[float] = None, limit: Optional[int] = None, seed: int = 0,
                skip_bad: bool = False,
                split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
                split_seed: int = 0) -> DataSource:
    """Open the data source written as ``spec`` (see ``SOURCE_FORMS``).

    ``fraction`` (in (0, 1]) or ``limit`` (a count), not both, with ``seed`` draw a stratified,
    reproducible subset of the training split; validation and test are used whole.
    ``split_fractions`` and ``split_seed`` set the stratified train/validation/test split of
    sources that have none (demo, glyphs, folder, tfrecord); the split seed is separate from
    ``seed`` so repeats with different subset seeds are evaluated on the same test patches.
    ``data_dir`` is TFDS's data directory (``tfds:`` only). ``skip_bad`` leaves out unreadable
    images and records (folder, tfrecord) instead of failing, and counts them in
    ``source.skipped``.

    Every problem with the input raises ``DataError`` (a ``UserError``) naming the file.
    """
    kind, argument = parse_source_spec(spec)
    check_subset_options(fraction, limit)
    fractions = check_split_fractions(split_fractions)
    if data_dir is not None and kind != "tfds":
        raise DataError(f"--data-dir only applies to tfds: sources; for {kind} the location is "
                        f"part of --data (e.g. {kind}:DIR)")
    subset = dict(fraction=fraction, limit=limit, seed=int(seed))
    split = dict(split_fractions=fractions, split_seed=int(split_seed))
    spec = spec.strip()

    if kind == "demo":
        from hvitgan_tf.data.demo import DemoSource
        source = DemoSource(spec, **split, **subset)
    elif kind == "glyphs":
        from hvitgan_tf.data.glyphs import GlyphSource
        source = GlyphSource(spec, **split, **subset)
    elif kind == "tfds":
        from hvitgan_tf.data.tfds_pcam import TFDSPatchCamelyonSource
        source = TFDSPatchCamelyonSource(spec, argument, data_dir, **subset)
    elif kind == "pcam-h5":
        from hvitgan_tf.data.pcam_h5 import PCamH5Source
        source = PCamH5Source(spec, argument, **subset)
    elif kind == "folder":
        from hvitgan_tf.data.folder import FolderSource
        source = FolderSource(spec, argument, skip_bad=skip_bad, **split, **subset)
    else:
        from hvitgan_tf.data.tfrecord import TFRecordSource
        source = TFRecordSource(spec, argument, skip_bad=skip_bad, **split, **subset)

    if limit is not None:
        # Fail at open time, not at the first epoch, when the limit cannot be met.
        check_limit(limit, source.full_num_examples("train"), source.num_classes,
                    f"training split of {spec}")
    return source
