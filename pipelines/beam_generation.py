"""The Beam transforms behind ``python -m pipelines.beam_sample`` (the entry point lives there).

Graph, for one sampling job (``beam_sample.SamplingJob``)::

    tasks (label, first attempt, stop)        beam.Create + Reshuffle: spread over workers
      -> attempts (label, attempt, seed)      seeds.attempt_seeds: the CLI's seeds
      -> RunInference(GenerateHandler)        the SavedModel's ``generate`` signature, batched
      -> candidates                           confidence >= threshold, encoded as the CLI's record
         |-> (label, (attempt, seed, conf))   -> first ``needed`` per class in attempt order
         |                                       -> placement: global order, shard of each
         '-> records placed by that side input -> GroupByKey(shard) -> one TFRecord file each
      -> selection file (after every shard)   read by the driver, which writes the manifest

Only the kept records carry image bytes past the threshold; the per-class cut (which candidates
are among the first ``needed``) travels as small tuples, so no worker ever holds a whole class.
Every file is written under a ``.tmp-`` name and renamed, so a retried bundle (Beam re-runs
failed work) rewrites the same bytes and a crash leaves no half-written shard under a final name.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Dict, Iterable, List, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from hvitgan_tf.sampling.seeds import attempt_seeds
from hvitgan_tf.sampling.writers import shard_name

TMP_PREFIX = ".tmp-"  # the prefix hvitgan_tf.sampling.writers cleans up when it reopens OUT


class GenerateHandler(ModelHandler):
    """RunInference handler for the exported SavedModel's ``generate`` signature.

    Beam's ``TFModelHandlerTensor`` loads models with ``tf.keras.models.load_model``, which
    fails on this Keras 3 export (apache/beam#30616); this handler uses ``tf.saved_model.load``
    through ``ExportedModel``, exactly what ``hvitgan-tf sample`` and TF Serving load.
    Elements are ``(label, attempt, seed)``; each inference is ``(image uint8 [S, S, 3],
    confidence)``. The export computes every sample with batch-independent shapes, so how
    RunInference happens to batch the elements does not change a single byte.
    """

    def __init__(self, model_dir: str, metadata: dict, truncation: float, batch_size: int):
        super().__init__()
        self._model_dir = model_dir
        self._metadata = metadata
        self._truncation = float(truncation)
        self._batch_size = int(batch_size)

    def load_model(self):
        from hvitgan_tf.exported_model import ExportedModel

        return ExportedModel(self._model_dir, self._metadata)

    def run_inference(self, batch, model, inference_args=None) -> Iterable[PredictionResult]:
        labels = np.array([element[0] for element in batch], np.int32)
        seeds = np.array([element[2] for element in batch], np.int64)
        outputs = model.generate(labels, seeds, self._truncation)
        return [PredictionResult(element, (outputs["images"][i], float(outputs["confidence"][i])))
                for i, element in enumerate(batch)]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self._batch_size}

    def get_metrics_namespace(self) -> str:
        return "hvitgan_generate"


def expand_task(task: Tuple[int, int, int], run_seed: int):
    """``(label, start, stop)`` -> ``(label, attempt, seed)`` for attempts ``start..stop-1``."""
    label, start, stop = task
    attempts = np.arange(start, stop, dtype=np.int64)
    for attempt, seed in zip(attempts.tolist(), attempt_seeds(run_seed, label, attempts).tolist()):
        yield label, attempt, seed


class EncodeKept(beam.DoFn):
    """Keep results with ``confidence >= threshold`` and encode them as the CLI does.

    Output: ``(label, attempt, seed, confidence, serialized tf.train.Example)``, where the
    record is ``serialize_example(encode_png(image), label, confidence=, class_name=)`` — the
    calls ``hvitgan_tf.sampling.writers.SampleWriter`` makes, so the bytes are the same.
    """

    def __init__(self, threshold: float, class_names: List[str]):
        self._threshold = float(threshold)
        self._class_names = list(class_names)

    def setup(self):
        from hvitgan_tf import imaging
        from hvitgan_tf.data.tfrecord import serialize_example

        self._encode_png = imaging.encode_png
        self._serialize = serialize_example

    def process(self, result: PredictionResult):
        label, attempt, seed = result.example
        image, confidence = result.inference
        beam.metrics.Metrics.counter("hvitgan_sample", "generated").inc()
        if confidence >= self._threshold:
            record = self._serialize(self._encode_png(image), label, confidence=confidence,
                                     class_name=self._class_names[label])
            yield label, attempt, seed, confidence, record


def light_candidate(candidate):
    """``(label, (attempt, seed, confidence))``: a candidate without its record bytes."""
    label, attempt, seed, confidence, _ = candidate
    return label, (attempt, seed, confidence)


def place_samples(firsts: Dict[int, list], order: List[int], needed: Dict[int, int],
                  first_shard: int, shard_size: int) -> dict:
    """Where each kept sample goes, given each class's candidates sorted by attempt.

    Keeps the first ``needed[label]`` candidates of every class (the CLI's rule: the first
    quota attempts, in attempt order, that pass the threshold), lays them out class by class
    in ``order`` (the order of ``--classes``), each class in attempt order, and cuts that
    sequence into shards of ``shard_size`` numbered from ``first_shard``.

    Returns ``{"rows": [[label, attempt, seed, confidence, shard name], ...] in that order,
    "where": {(label, attempt): (shard index, position)}}``.
    """
    rows, where = [], {}
    for label in order:
        for attempt, seed, confidence in list(firsts.get(label, []))[:needed.get(label, 0)]:
            position = len(rows)
            shard = first_shard + position // shard_size
            rows.append([label, attempt, seed, confidence, shard_name(shard)])
            where[(label, attempt)] = (shard, position)
    return {"rows": rows, "where": where}


def route_record(candidate, placement):
    """``(shard index, (position, record))`` of a kept candidate; nothing for the others."""
    label, attempt, _, _, record = candidate
    spot = placement["where"].get((label, attempt))
    if spot is not None:
        shard, position = spot
        yield shard, (position, record)


class WriteShard(beam.DoFn):
    """Write one shard's records in placement order to ``OUT/samples-NNNNN.tfrecord``."""

    def __init__(self, out_dir: str):
        self._out_dir = out_dir

    def process(self, shard_and_records):
        import tensorflow as tf

        shard, records = shard_and_records
        name = shard_name(shard)
        tmp = join(self._out_dir, f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}")
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for _, record in sorted(records, key=lambda item: item[0]):
                    writer.write(record)
            tf.io.gfile.rename(tmp, join(self._out_dir, name), overwrite=True)
        except BaseException:
            if tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
            raise
        yield name


def write_selection(placement, path: str, shard_names: List[str], generated: Dict[int, int]):
    """The selection file the driver reads after the run (written after every shard: the
    shard names arrive as a side input, so Beam runs this step last)."""
    import tensorflow as tf

    missing = sorted({row[4] for row in placement["rows"]} - set(shard_names))
    if missing:
        raise RuntimeError(f"shards {missing} were placed but not written")
    document = {"rows": placement["rows"], "shards": sorted(shard_names),
                "generated": {str(label): count for label, count in generated.items()}}
    tmp = join(os.path.dirname(path), f"{TMP_PREFIX}{uuid.uuid4().hex}.json")
    with tf.io.gfile.GFile(tmp, "w") as handle:
        handle.write(json.dumps(document))
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path


def build(pipeline, job, selection_path: str):
    """Add the sampling graph for ``job`` (a ``beam_sample.SamplingJob``) to ``pipeline``."""
    tasks = job.tasks()
    generated = {}
    for label, start, stop in tasks:
        generated[label] = generated.get(label, 0) + stop - start
    candidates = (
        pipeline
        | "Tasks" >> beam.Create(tasks)
        # Without it a runner may fuse everything after Create into one worker.
        | "Spread" >> beam.Reshuffle()
        | "Attempts" >> beam.FlatMap(expand_task, job.seed)
        | "Generate" >> RunInference(GenerateHandler(
            job.model_dir, job.metadata, job.truncation, job.batch_size))
        | "Threshold" >> beam.ParDo(EncodeKept(job.threshold, job.class_names))
    )
    needed = {entry.label: entry.needed for entry in job.classes}
    largest = max([1, *needed.values()])
    placement = (
        candidates
        | "Light" >> beam.Map(light_candidate)
        | "FirstPerClass" >> beam.combiners.Top.SmallestPerKey(largest)
        | "AllClasses" >> beam.combiners.ToDict()
        | "Place" >> beam.Map(place_samples, [entry.label for entry in job.classes], needed,
                              job.first_shard, job.shard_size)
    )
    shard_names = (
        candidates
        | "Route" >> beam.FlatMap(route_record, beam.pvalue.AsSingleton(placement))
        | "ByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(job.out_dir))
    )
    return placement | "Selection" >> beam.Map(
        write_selection, selection_path, beam.pvalue.AsList(shard_names), generated)


def read_selection(path: str) -> dict:
    """Read (and remove) the file ``write_selection`` wrote."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as handle:
        selection = json.loads(handle.read())
    tf.io.gfile.remove(path)
    return selection


def join(folder: str, name: str) -> str:
    """``os.path.join`` for local folders, ``/`` for URLs (``gs://``)."""
    return folder.rstrip("/") + "/" + name if "://" in folder else os.path.join(folder, name)
