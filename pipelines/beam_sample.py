"""Selective augmentation at scale: ``hvitgan-tf sample --format tfrecord`` as an Apache Beam
pipeline (docs/method.md §6, §10).

    python -m pipelines.beam_sample --model saved_models/hvitgan --per-class 50 --out OUT
    python -m pipelines.beam_sample --model gs://B/saved_models/hvitgan --per-class 100000 \\
        --out gs://B/synthetic --runner DataflowRunner --project P --region R \\
        --temp_location gs://B/tmp --setup_file ./setup.py

Options this module does not know are Beam's own (``--runner``, ``--project``,
``--flink_master``, ``--direct_num_workers`` ...) and go to ``PipelineOptions`` unchanged; an
option neither knows is an error, not silently dropped. Without ``--runner`` the pipeline runs
in this process on Beam's DirectRunner.

**Same output as the CLI.** OUT gets what ``hvitgan-tf sample --format tfrecord`` writes:
``samples-NNNNN.tfrecord`` shards of the same records (``serialize_example`` of the same PNG
bytes, label, confidence and class name), ``manifest.csv`` with the same columns, ids, seeds
and confidences, ``classes.json`` and ``sampling.json``. Seeds come from
``hvitgan_tf.sampling.seeds`` (attempt ``k`` of class ``c`` has the CLI's seed), and the
exported ``generate`` signature gives the same image for a seed whatever the batch. So for the
same model, ``--seed``, ``--truncation`` and ``--threshold`` the kept samples are the CLI's,
byte for byte (PNG bytes: given the same Pillow/zlib); only the order of records across
shards differs (here: class by class in attempt order; the CLI: in generation batches).
Because ``sampling.json`` is the CLI's, ``hvitgan-tf sample`` can resume or top up a folder
this pipeline wrote, and this pipeline can continue a local folder the CLI (or it) started.

**Quotas without a sequential loop.** The CLI generates batch after batch and stops a class
when its quota is full. A Beam job is one parallel pass, so each class gets a fixed attempt
budget up front: ``--attempts-per-class N``, or by default ``ceil(missing / A)`` attempts with
``A = --expected-acceptance`` (default 0.5), never past ``--max-attempts`` (per class, whole
folder; default 20 x quota, as the CLI). All budgeted attempts are generated; then the first
``quota`` attempts *in attempt order* that pass the threshold are kept — the CLI's rule — so
the two keep the same attempts whenever the budget reaches the CLI's last kept attempt (give
both the same ``--max-attempts`` and ``--attempts-per-class`` = that, and they always agree).
The price of parallelism is the attempts generated past the last kept one. A class still short
after its budget is reported with its acceptance rate and exit code 3, after writing what was
kept; rerunning the same command continues at the next attempt (or use ``hvitgan-tf sample``).

Errors a user can fix (bad ``--model``, a threshold outside [0, 1), an OUT holding another
model's samples ...) print one line and exit 2, before TensorFlow or Beam start.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import List, Optional

from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import describe, read_export_metadata
from hvitgan_tf.sampling import plan
from hvitgan_tf.sampling.writers import (CLASSES, MANIFEST, STATE, ClassProgress, KeptSample,
                                         OutputFolder, append_manifest, format_row,
                                         write_manifest)

FORMATS = ("tfrecord",)
DEFAULT_EXPECTED_ACCEPTANCE = 0.5
DEFAULT_ATTEMPTS_PER_TASK = 512


@dataclasses.dataclass
class ClassPlan:
    """One class of a job: what the folder holds, what this run adds, which attempts."""

    label: int
    name: str
    quota: int
    max_attempts: int
    progress: ClassProgress  # what OUT holds before this run
    stop: int  # this run generates attempts progress.attempts .. stop - 1

    @property
    def start(self) -> int:
        return self.progress.attempts

    @property
    def needed(self) -> int:
        return max(0, self.quota - self.progress.kept)


@dataclasses.dataclass
class SamplingJob:
    """Everything decided before the pipeline starts (validated, no TensorFlow needed)."""

    model_dir: str
    metadata: dict
    out_dir: str
    seed: int
    truncation: float
    threshold: float
    batch_size: int
    shard_size: int
    attempts_per_task: int
    classes: List[ClassPlan]
    first_shard: int
    output: Optional[OutputFolder]  # the opened local OUT; None for a remote (gs://) OUT
    resumed: bool = False

    @property
    def class_names(self) -> List[str]:
        return list(self.metadata["class_names"])

    @property
    def settings(self) -> dict:
        # The keys OutputFolder compares when a run is resumed (writers.RESUME_SETTINGS).
        return {"seed": self.seed, "truncation": self.truncation, "threshold": self.threshold,
                "formats": list(FORMATS)}

    def tasks(self):
        """``(label, start, stop)`` work items of at most ``attempts_per_task`` attempts."""
        items = []
        for entry in self.classes:
            for start in range(entry.start, entry.stop, self.attempts_per_task):
                items.append((entry.label, start, min(entry.stop, start + self.attempts_per_task)))
        return items


def attempt_stop(quota: int, progress: ClassProgress, max_attempts: int,
                 attempts_per_class: Optional[int], expected_acceptance: float) -> int:
    """The attempt index this run stops before, for one class (see the module docstring)."""
    missing = quota - progress.kept
    if missing <= 0 or progress.attempts >= max_attempts:
        return progress.attempts
    budget = attempts_per_class or math.ceil(missing / expected_acceptance)
    return min(max_attempts, progress.attempts + budget)


# -- command line ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m pipelines.beam_sample", allow_abbrev=False,
        description="Class-balanced, confidence-filtered synthetic patches from an exported "
                    "hvitgan SavedModel, generated by an Apache Beam pipeline; writes what "
                    "'hvitgan-tf sample --format tfrecord' writes. Other options go to Beam "
                    "(--runner, --project, --temp_location, ...; default DirectRunner).")
    add = parser.add_argument
    add("--model", default="saved_models/hvitgan",
        help="saved_models/NAME (highest version) or saved_models/NAME/VERSION; gs:// works")
    add("--out", default="synthetic",
        help="output folder (local, or gs:// for a new one); a local one is resumed")
    add("--per-class", type=_positive_int, help="keep N images of every selected class")
    add("--num", type=_positive_int, help="keep N images in total, split by --class-ratio")
    add("--class-ratio", help="how --num is split: 0.5,0.5 or tumor=0.7,normal=0.3")
    add("--classes", help="comma-separated class names or ids (default: all)")
    add("--threshold", type=float, default=plan.DEFAULT_THRESHOLD,
        help="keep an image when the class head gives its label this probability, in [0, 1) "
             "(default %(default)s)")
    add("--truncation", type=float, default=1.0, help="truncation psi of the noise, >= 0")
    add("--seed", type=int, default=0, help="run seed (the CLI's --seed: same seed, same images)")
    add("--batch-size", type=_positive_int, default=plan.DEFAULT_BATCH_SIZE,
        help="largest batch RunInference sends to the model (does not change the images; "
             "default %(default)s)")
    add("--shard-size", type=_positive_int, default=plan.DEFAULT_SHARD_SIZE,
        help="records per TFRecord shard (default %(default)s)")
    add("--max-attempts", type=_positive_int,
        help="cap on attempts per class, counting earlier runs into OUT (default "
             f"{plan.DEFAULT_ATTEMPTS_PER_IMAGE} x quota)")
    add("--attempts-per-class", type=_positive_int,
        help="attempts each short class gets in this run (default: missing / "
             "--expected-acceptance)")
    add("--expected-acceptance", type=float, default=DEFAULT_EXPECTED_ACCEPTANCE,
        help="the acceptance rate the default attempt budget assumes, in (0, 1]")
    add("--attempts-per-task", type=_positive_int, default=DEFAULT_ATTEMPTS_PER_TASK,
        help="attempts per Beam work item (the unit spread over workers)")
    add("--verbose", action="store_true", help="show TensorFlow's and Beam's log messages")
    return parser


def parse_args(argv):
    """``(our options, Beam's arguments)``; unknown options are an error, not ignored."""
    args, beam_args = make_parser().parse_known_args(argv)
    return args, beam_args


def check_beam_args(beam_args: List[str]):
    """Refuse arguments Beam would silently discard (a typo in one of ours, say)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parsers = []
    PipelineOptions(beam_args).get_all_options(add_extra_args_fn=parsers.append)
    _, unknown = parsers[0].parse_known_args(beam_args)
    if unknown:
        raise UserError(f"unknown option(s) {' '.join(unknown)}: neither an option of "
                        "pipelines.beam_sample (see --help) nor a Beam pipeline option")


# -- planning --------------------------------------------------------------------------------

def _remote(path: str) -> bool:
    return "://" in path


def _check_remote_out(out_dir: str):
    import tensorflow as tf

    if tf.io.gfile.isdir(out_dir):
        taken = [entry for entry in tf.io.gfile.listdir(out_dir)
                 if entry in (MANIFEST, STATE) or ".tfrecord" in entry]
        if taken:
            raise UserError(f"--out {out_dir} already holds samples ({', '.join(taken[:3])}); "
                            "a gs:// output must be new (resuming works for local folders)")


def plan_job(args) -> SamplingJob:
    """Validate every option and open OUT, before a model is loaded."""
    from hvitgan_tf.sampling.sampler import check_settings

    check_settings(args.threshold, args.truncation, args.batch_size, FORMATS,
                   args.max_attempts, args.shard_size, args.seed)
    if not 0.0 < args.expected_acceptance <= 1.0:
        raise UserError(f"--expected-acceptance must be in (0, 1], got {args.expected_acceptance}")
    metadata = read_export_metadata(args.model)  # local, or gs:// through tf.io.gfile
    class_names = list(metadata["class_names"])
    quotas = plan.plan_quotas(class_names, per_class=args.per_class, num=args.num,
                              class_ratio=args.class_ratio, classes=args.classes)
    job = SamplingJob(
        model_dir=metadata["model_dir"], metadata=metadata, out_dir=args.out,
        seed=int(args.seed), truncation=float(args.truncation),
        threshold=float(args.threshold), batch_size=args.batch_size,
        shard_size=args.shard_size, attempts_per_task=args.attempts_per_task, classes=[],
        first_shard=0, output=None)
    if _remote(args.out):
        _check_remote_out(args.out)
        progress = {label: ClassProgress() for label in range(len(class_names))}
    else:
        # The CLI's own folder logic: refuses another model or other settings, removes what a
        # crashed run left, and counts what is there, so both tools resume each other.
        job.output = OutputFolder(args.out, metadata, job.settings)
        job.out_dir, job.resumed = job.output.path, job.output.resumed
        job.first_shard = job.output.next_shard_index()
        progress = job.output.progress
    for label, quota in quotas.items():
        cap = args.max_attempts or plan.default_max_attempts(quota)
        job.classes.append(ClassPlan(
            label=label, name=class_names[label], quota=quota, max_attempts=cap,
            progress=dataclasses.replace(progress[label]),
            stop=attempt_stop(quota, progress[label], cap, args.attempts_per_class,
                              args.expected_acceptance)))
    return job


# -- after the pipeline ----------------------------------------------------------------------

def finish(job: SamplingJob, selection: dict, seconds: float):
    """Write manifest rows and counters for what the pipeline kept; return a SampleReport.

    Runs on the driver after every shard exists, so the manifest never names a missing file.
    """
    from hvitgan_tf.sampling.sampler import ClassReport, SampleReport
    from hvitgan_tf.sampling.seeds import sample_id
    from hvitgan_tf.sampling.writers import model_identity

    names = job.class_names
    model = model_identity(job.metadata)
    rows, kept = [], {entry.label: [] for entry in job.classes}
    for label, attempt, seed, confidence, shard in selection["rows"]:
        kept[label].append((attempt, confidence))
        sample = KeptSample(id=sample_id(names[label], attempt), label=label,
                            class_name=names[label], attempt=attempt, seed=seed,
                            truncation=job.truncation, confidence=confidence, image=None)
        rows.append(format_row(sample, model, shard, shard))

    progress = dict(job.output.progress) if job.output else {
        label: ClassProgress() for label in range(len(names))}
    reports = []
    for entry in job.classes:
        state = dataclasses.replace(entry.progress)
        new = kept[entry.label]
        state.kept += len(new)
        state.confidence_sum += sum(confidence for _, confidence in new)
        if entry.stop > entry.start:
            # The CLI's counter: attempts decided so far. A full class stops deciding at its
            # last kept attempt; a short one has decided its whole budget.
            state.attempts = new[-1][0] + 1 if state.kept >= entry.quota else entry.stop
        progress[entry.label] = state
        reports.append(ClassReport(
            name=entry.name, label=entry.label, requested=entry.quota,
            max_attempts=entry.max_attempts, kept=state.kept, attempts=state.attempts,
            generated=entry.stop - entry.start, kept_this_run=len(new),
            confidence_sum=state.confidence_sum))

    if job.output is not None:
        append_manifest(job.output.manifest_path, rows)
        job.output.write_state(progress)
    else:
        _publish_remote_side_files(job, rows, progress)
    return SampleReport(
        out_dir=job.out_dir, model_dir=job.model_dir, model_name=job.metadata["name"],
        model_version=int(job.metadata["version"]), threshold=job.threshold,
        truncation=job.truncation, seed=job.seed, formats=FORMATS,
        batch_size=job.batch_size, classes=reports, resumed=job.resumed, seconds=seconds,
        records=len(rows), shards=list(selection["shards"]))


def _publish_remote_side_files(job, rows, progress):
    """Write the side files with the CLI's own code into a local folder, then copy them
    (state last, like the CLI: counters are committed after the rows they count)."""
    import tensorflow as tf

    stage = tempfile.mkdtemp(prefix="hvitgan-beam-")
    try:
        folder = OutputFolder(stage, job.metadata, job.settings)
        write_manifest(folder.manifest_path, rows)
        folder.write_state(progress)
        for name in (CLASSES, MANIFEST, STATE):
            tmp = f"{job.out_dir.rstrip('/')}/.tmp-{uuid.uuid4().hex}-{name}"
            tf.io.gfile.copy(os.path.join(stage, name), tmp, overwrite=True)
            tf.io.gfile.rename(tmp, f"{job.out_dir.rstrip('/')}/{name}", overwrite=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# -- running ---------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet(verbose: bool):
    """Silence TensorFlow's C++ log and Beam's import-time warnings unless --verbose."""
    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def run(argv=None, *, echo=print):
    """Plan, run the pipeline, write the side files; returns the ``SampleReport``.

    Raises ``UserError`` for bad options and ``QuotaNotReached`` (exit 3) when a class could
    not be filled within its budget (after writing what was kept).
    """
    from hvitgan_tf.sampling.report import format_table
    from hvitgan_tf.sampling.sampler import QuotaNotReached

    began = time.perf_counter()
    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    job = plan_job(args)
    from hvitgan_tf._backend import start_tensorflow

    start_tensorflow(args.verbose)  # the CLI's quiet start: no C++ start-up lines
    with _quiet(args.verbose):
        check_beam_args(beam_args)
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions

        from pipelines import beam_generation

    wanted = ", ".join(f"{entry.name} {entry.quota}" for entry in job.classes)
    echo(f"sampling {describe(job.metadata)} with Beam: {wanted}; threshold "
         f"{job.threshold:g}, truncation {job.truncation:g}, seed {job.seed} -> {job.out_dir}",
         file=sys.stderr)
    selection = {"rows": [], "shards": []}
    if job.tasks():
        path = beam_generation.join(job.out_dir, f".tmp-beam-selection-{uuid.uuid4().hex}.json")
        with _quiet(args.verbose):
            with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
                beam_generation.build(pipeline, job, path)
            selection = beam_generation.read_selection(path)
    report = finish(job, selection, time.perf_counter() - began)

    echo(format_table(report))
    echo(f"generated {report.generated} images in {report.seconds:.1f} s; wrote "
         f"{report.records} records")
    out = report.out_dir
    echo(f"tfrecords:  {out}/samples-*.tfrecord "
         f"({', '.join(report.shards) if report.shards else 'no new shard'})")
    echo(f"manifest:   {report.manifest}")
    echo(f"read with:  --data 'tfrecord:{out}/*.tfrecord'")
    if not report.complete:
        raise QuotaNotReached(report.shortfall_message() + " (or rerun: this OUT continues "
                              "at the next attempt; --attempts-per-class sets the budget)")
    return report


def main(argv=None):
    try:
        run(argv)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
