"""Selective augmentation (docs/method.md §6): class-balanced, truncated, confidence-filtered
generation from an exported SavedModel into an image folder and/or TFRecord shards.

    from hvitgan_tf.sampling import sample
    report = sample("saved_models/hvitgan", "synthetic", per_class=500, threshold=0.8)
    report.complete, report.classes[0].acceptance

The loop, per batch:

1. *allocate* the batch's slots to the classes still short of their quota, in proportion to the
   attempts each still needs at its observed acceptance rate (never past ``max_attempts``);
2. *generate* attempts ``k, k+1, ...`` of each class with the model's ``generate`` signature —
   seeds from ``seeds.attempt_seeds``, confidence ``p = softmax(D_c(x))[y]`` computed inside
   the model on the uint8 image;
3. *select* in attempt order: keep ``p >= threshold`` until the quota is full (later attempts
   of that batch are not counted, so the kept set does not depend on the batch size);
4. hand the kept images to the *background writer* (``writers.BackgroundWriter``) and go on
   with the next batch while it writes.

After the second batch (the first pays the model's one-off start-up: measured 1.5 s against 8 ms
for a batch of 2 on the tiny model) the rest of the plan is estimated from the measured rate
(``plan.PlanEstimate``): one that would take more than a day, or more disk than is free, is
announced on stderr before going on.

Only the SavedModel is used (``ExportedModel``), never the Python model classes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import ExportedModel, read_export_metadata
from hvitgan_tf.fileio import release_folder
from hvitgan_tf.sampling import plan
from hvitgan_tf.sampling.seeds import attempt_seeds, sample_id
from hvitgan_tf.sampling.writers import (FORMATS, MANIFEST, BackgroundWriter, KeptSample,
                                         OutputFolder, SampleWriter, bytes_per_sample,
                                         check_class_names)

# Attempts planned per missing image beyond the observed acceptance rate (a little slack, so
# that the last batch of a class usually fills it instead of needing one more batch).
_SLACK = 1.1
# Images of the second batch encoded to measure what the writer stores per image.
_ESTIMATE_SAMPLES = 4


class QuotaNotReached(UserError):
    """Some class could not be filled within ``--max-attempts`` (exit code 3)."""

    exit_code = 3


@dataclasses.dataclass
class ClassReport:
    """One class of a sampling run. ``kept``/``attempts`` count the whole folder (earlier runs
    included); ``generated``/``kept_this_run`` only this run."""

    name: str
    label: int
    requested: int
    max_attempts: int
    kept: int = 0
    attempts: int = 0
    generated: int = 0
    kept_this_run: int = 0
    confidence_sum: float = 0.0

    @property
    def acceptance(self) -> float:
        return self.kept / self.attempts if self.attempts else float("nan")

    @property
    def mean_confidence(self) -> float:
        return self.confidence_sum / self.kept if self.kept else float("nan")

    @property
    def complete(self) -> bool:
        return self.kept >= self.requested

    def shortfall(self) -> str:
        acceptance = (f"acceptance {100 * self.acceptance:.1f} %" if self.attempts
                      else "no attempts")
        return (f"class {self.name}: {self.kept}/{self.requested} kept after {self.attempts} "
                f"attempts ({acceptance})")


@dataclasses.dataclass
class SampleReport:
    """What ``sample`` did. Rates: ``generated_per_second`` is the model's (time inside the
    ``generate`` calls), ``written_per_second`` the writer thread's (time it was busy)."""

    out_dir: str
    model_dir: str
    model_name: str
    model_version: int
    threshold: float
    truncation: float
    seed: int
    formats: tuple
    batch_size: int
    classes: List[ClassReport]
    resumed: bool = False
    seconds: float = 0.0
    generate_seconds: float = 0.0
    write_seconds: float = 0.0
    wait_seconds: float = 0.0
    pngs: int = 0
    records: int = 0
    shards: List[str] = dataclasses.field(default_factory=list)

    @property
    def manifest(self) -> str:
        return f"{self.out_dir}/{MANIFEST}"

    @property
    def generated(self) -> int:
        return sum(c.generated for c in self.classes)

    @property
    def written(self) -> int:
        return sum(c.kept_this_run for c in self.classes)

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.classes)

    @property
    def shortfalls(self) -> List[str]:
        return [c.shortfall() for c in self.classes if not c.complete]

    def shortfall_message(self) -> str:
        """One line naming every class that could not be filled, and what to do about it."""
        return "; ".join(self.shortfalls) + "; lower --threshold or train longer"

    @property
    def generated_per_second(self) -> float:
        return self.generated / self.generate_seconds if self.generate_seconds else 0.0

    @property
    def written_per_second(self) -> float:
        return self.written / self.write_seconds if self.write_seconds else 0.0


def check_settings(threshold, truncation, batch_size, formats, max_attempts, shard_size, seed):
    """The scalar options of ``sample`` (docs/method.md §6.3: threshold in [0, 1); ψ >= 0)."""
    if not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
        raise UserError(f"--threshold must be in [0, 1), got {threshold!r} (a confidence of "
                        "1.0 is never reached exactly)")
    if not isinstance(truncation, (int, float)) or not truncation >= 0.0:
        raise UserError(f"--truncation (psi) must be >= 0, got {truncation!r} (0 gives the "
                        "mean latent, larger values more variety)")
    for option, value in (("--batch-size", batch_size), ("--shard-size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{option} must be a positive integer, got {value!r}")
    if max_attempts is not None and (isinstance(max_attempts, bool)
                                     or not isinstance(max_attempts, int) or max_attempts < 1):
        raise UserError(f"--max-attempts must be a positive integer, got {max_attempts!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserError(f"--seed must be an integer, got {seed!r}")
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise UserError(f"formats must be among {', '.join(FORMATS)}, got {', '.join(formats)}")
    return tuple(f for f in FORMATS if f in formats)


def sample(model_dir, out_dir, **options):
    """Generate, select and write samples into ``out_dir``; see :func:`_sample` for the
    options. ``out_dir`` is locked against other writers while this runs (one writer per
    folder) and released when it returns or fails."""
    try:
        return _sample(model_dir, out_dir, **options)
    finally:
        release_folder(out_dir)


def _sample(model_dir, out_dir, *, per_class: Optional[int] = None, num: Optional[int] = None,
           class_ratio=None, classes=None, threshold: float = plan.DEFAULT_THRESHOLD,
           truncation: float = 1.0, batch_size: int = plan.DEFAULT_BATCH_SIZE, seed: int = 0,
           formats: Sequence[str] = ("png",), max_attempts: Optional[int] = None,
           shard_size: int = plan.DEFAULT_SHARD_SIZE, progress: bool = True,
           model=None) -> SampleReport:
    """Fill ``out_dir`` with kept samples of the model at ``model_dir`` (see module docstring).

    Args:
        model_dir: ``saved_models/<name>`` (highest version) or a version folder.
        per_class / num: exactly one: images per selected class, or in total split by
            ``class_ratio`` (``"0.5,0.5"``, ``"tumor=0.7,normal=0.3"``, numbers or a mapping;
            default uniform). Quotas count what the folder already holds: a rerun resumes.
        classes: names or ids (``"tumor,normal"`` or a list); default all.
        threshold: keep an image when the class head gives its label this probability.
        truncation: ψ of the truncated noise (docs/method.md §6.1), ``>= 0``.
        max_attempts: cap on attempts per class (whole folder); default 20 x its quota.
        formats: ``png`` and/or ``tfrecord``.
        model: an already loaded ``ExportedModel`` of ``model_dir`` (saves loading it twice).
    Returns a ``SampleReport``; ``report.complete`` is False when some class could not be filled
    (``report.shortfalls`` says which), which the CLI turns into exit code 3.
    """
    began = time.perf_counter()
    formats = check_settings(threshold, truncation, batch_size, formats, max_attempts,
                             shard_size, seed)
    metadata = model.metadata if model is not None else read_export_metadata(model_dir)
    class_names = list(metadata["class_names"])
    quotas = plan.plan_quotas(class_names, per_class=per_class, num=num,
                              class_ratio=class_ratio, classes=classes)
    if "png" in formats:
        check_class_names(class_names)
    settings = {"seed": int(seed), "truncation": float(truncation),
                "threshold": float(threshold), "formats": list(formats)}
    if model is None:
        # Before OUT is opened: a damaged SavedModel must fail with OUT untouched.
        model = ExportedModel(metadata["model_dir"], metadata)
    output = OutputFolder(out_dir, metadata, settings)
    state = output.progress  # label -> ClassProgress, updated as samples are kept
    reports = {
        label: ClassReport(
            name=class_names[label], label=label, requested=quota,
            max_attempts=max_attempts or plan.default_max_attempts(quota),
            kept=state[label].kept, attempts=state[label].attempts,
            confidence_sum=state[label].confidence_sum)
        for label, quota in quotas.items()
    }
    report = SampleReport(
        out_dir=output.path, model_dir=metadata["model_dir"], model_name=metadata["name"],
        model_version=int(metadata["version"]), threshold=float(threshold),
        truncation=float(truncation), seed=int(seed), formats=formats, batch_size=batch_size,
        classes=list(reports.values()), resumed=output.resumed)

    if _allocate(reports, batch_size):
        writer = BackgroundWriter(SampleWriter(output, formats, shard_size))
        try:
            with _progress_bar(reports, progress) as bar:
                _run(model, reports, state, writer, report, bar, output)
        finally:
            writer.finish()
            report.write_seconds = writer.writer.busy_seconds
            report.wait_seconds = writer.wait_seconds
            report.pngs = writer.writer.pngs
            report.records = writer.writer.records
            if writer.writer.shards is not None:
                report.shards = list(writer.writer.shards.closed_shards)
    report.seconds = time.perf_counter() - began
    return report


def _run(model, reports, state, writer, report, bar, output):
    threshold, truncation, seed = report.threshold, report.truncation, report.seed
    batches = 0
    while True:
        allocation = _allocate(reports, report.batch_size)
        if not allocation:
            return
        labels, attempts = [], []
        for label, count in allocation.items():
            start = reports[label].attempts
            labels.append(np.full(count, label, np.int32))
            attempts.append(np.arange(start, start + count, dtype=np.int64))
        labels, attempts = np.concatenate(labels), np.concatenate(attempts)
        seeds = np.concatenate([attempt_seeds(seed, label, attempts[labels == label])
                                for label in allocation])
        tick = time.perf_counter()
        outputs = model.generate(labels, seeds, truncation)
        batch_seconds = time.perf_counter() - tick
        report.generate_seconds += batch_seconds
        batches += 1

        kept = []
        for i, (label, attempt) in enumerate(zip(labels.tolist(), attempts.tolist())):
            entry = reports[label]
            entry.generated += 1
            if entry.kept >= entry.requested:
                continue  # the quota filled earlier in this batch: not an attempt of the run
            entry.attempts = attempt + 1
            confidence = float(outputs["confidence"][i])
            if confidence >= threshold:
                entry.kept += 1
                entry.kept_this_run += 1
                entry.confidence_sum += confidence
                kept.append(KeptSample(
                    id=sample_id(entry.name, attempt), label=label, class_name=entry.name,
                    attempt=attempt, seed=int(seeds[i]), truncation=truncation,
                    confidence=confidence, image=outputs["images"][i]))
        for label, entry in reports.items():
            state[label].kept, state[label].attempts = entry.kept, entry.attempts
            state[label].confidence_sum = entry.confidence_sum
        writer.submit(kept, state)
        bar.update(len(kept), reports)
        if batches == 2:  # the rate of the first batch is mostly the model's start-up
            examples = [KeptSample(
                id=sample_id(reports[label].name, attempt), label=label,
                class_name=reports[label].name, attempt=attempt, seed=int(seeds[i]),
                truncation=truncation, confidence=float(outputs["confidence"][i]),
                image=outputs["images"][i])
                for i, (label, attempt) in enumerate(zip(labels.tolist()[:_ESTIMATE_SAMPLES],
                                                         attempts.tolist()))]
            estimate = estimate_rest(reports, examples, output, report.formats,
                                     seconds_per_attempt=batch_seconds / len(labels))
            message = estimate.warning() if estimate is not None else None
            if message:
                bar.warn(message)


def estimate_rest(reports: Dict[int, ClassReport], examples: Sequence[KeptSample],
                  output: OutputFolder, formats: Sequence[str], *, seconds_per_attempt: float
                  ) -> Optional[plan.PlanEstimate]:
    """Time and disk the rest of the plan needs, at a measured rate (model time per attempt;
    the writer runs alongside) and the stored size of ``examples``; None when nothing is
    missing."""
    images = sum(max(0, entry.requested - entry.kept) for entry in reports.values())
    if not images:
        return None
    block = os.statvfs(output.path).f_bsize  # a small PNG still takes a whole block
    return plan.PlanEstimate(
        images=images,
        attempts=sum(_attempts_needed(entry) for entry in reports.values()),
        seconds_per_attempt=seconds_per_attempt,
        bytes_per_image=bytes_per_sample(examples, output.model, formats, block),
        free_bytes=shutil.disk_usage(output.path).free, folder=output.path)


def _attempts_needed(entry: ClassReport, slack: float = 1.0) -> int:
    """Attempts a class still needs at its observed acceptance rate (Laplace estimate, so a
    class with no data needs about twice its remaining quota), capped by its remaining
    attempts; 0 when it is full or out of attempts."""
    missing = entry.requested - entry.kept
    left = entry.max_attempts - entry.attempts
    if missing <= 0 or left <= 0:
        return 0
    acceptance = (entry.kept + 1) / (entry.attempts + 2)
    return min(left, max(missing, math.ceil(missing / acceptance * slack)))


def _allocate(reports: Dict[int, ClassReport], batch_size: int) -> Dict[int, int]:
    """Slots of the next batch per class still short of its quota (empty when done).

    Each class asks for the attempts it still needs (``_attempts_needed``, with a little
    slack). When the asks exceed the batch, every asking class gets one slot and the rest is
    shared in proportion to the asks.
    """
    asks = {label: _attempts_needed(entry, _SLACK) for label, entry in reports.items()}
    asks = {label: ask for label, ask in asks.items() if ask}
    total = sum(asks.values())
    if total <= batch_size:
        return asks
    labels = list(asks)[:batch_size]  # more classes than slots: the first ones this time
    slots = {label: 1 for label in labels}
    spare = batch_size - len(labels)
    if spare:
        rest = {label: asks[label] - 1 for label in labels}
        weight = sum(rest.values())
        if weight:
            extra = plan.split_by_ratio(spare, {label: rest[label] / weight for label in labels})
            for label in labels:
                slots[label] += min(extra[label], rest[label])
    return {label: count for label, count in slots.items() if count}


class _NoBar:
    def update(self, kept, reports):
        pass

    def warn(self, message):
        print(message, file=sys.stderr, flush=True)


class _ClickBar:
    """``click.progressbar`` on stderr, showing kept/quota and acceptance per class."""

    def __init__(self, bar):
        self._bar = bar

    def update(self, kept, reports):
        status = "  ".join(
            f"{entry.name} {entry.kept}/{entry.requested}"
            + (f" ({100 * entry.acceptance:.0f} %)" if entry.attempts else "")
            for entry in reports.values())
        self._bar.update(kept, current_item=status)

    def warn(self, message):
        import click

        # On a terminal the bar's line has no newline yet: end it, the warning gets its own.
        click.echo(("" if self._bar.is_hidden else "\n") + message, err=True)


@contextlib.contextmanager
def _progress_bar(reports, enabled):
    if not enabled:
        yield _NoBar()
        return
    import click

    missing = sum(max(0, entry.requested - entry.kept) for entry in reports.values())
    with click.progressbar(length=missing, label="kept", file=sys.stderr, show_pos=True,
                           item_show_func=lambda item: item) as bar:
        yield _ClickBar(bar)
