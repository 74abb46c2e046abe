"""Sampling throughput from exported SavedModels, as JSON on stdout.

    python benchmarks/sampling.py --model saved_models/hvitgan [--model ...]
                                  [--batch-sizes 16 64 256] [--threshold 0.8] [--seconds 4]
    python benchmarks/sampling.py --make-export tiny --work /tmp/bench   # train 4 iterations
                                                                          # of a preset, export

For each model and batch size: ``generate`` calls on the SavedModel (the path ``hvitgan-tf
sample`` and TF Serving take), timed for about ``--seconds`` after one warm-up call:
``generated_per_s``, the acceptance at ``--threshold`` of the images generated, and
``accepted_per_s`` = generated/s x acceptance.

Then one ``hvitgan_tf.sampling.sample`` run at threshold 0 (every image written, the writer's
worst case) with ``--format both``, which reports where the time went: ``generate_s`` (inside
the model), ``write_s`` (busy time of the writer thread: PNG encoding, files, TFRecords,
manifest), ``wait_s`` (generation blocked on a full writer queue) and ``wall_s``.
``writer_share`` = write_s / wall_s; ``overlap`` = the share of writing hidden behind generation,
(generate_s + write_s - wall_s) / write_s (1 = fully overlapped, 0 = serial).
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

from hvitgan_tf.sampling.plan import DEFAULT_THRESHOLD

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def make_export(preset, work, steps=4):
    """Train ``preset`` for ``steps`` iterations on the demo data and export it (for timing
    only: the images are noise, the throughput is real)."""
    from hvitgan_tf.data import open_source
    from hvitgan_tf.export import export_run
    from hvitgan_tf.models.config import preset as model_preset
    from hvitgan_tf.training.config import TrainConfig
    from hvitgan_tf.training.runner import train

    run_dir = os.path.join(work, f"run-{preset}")
    if not os.path.exists(os.path.join(run_dir, "checkpoints", "last.json")):
        source = open_source("demo", limit=64, seed=0)
        config = TrainConfig(batch_size=4, n_critic=2, total_steps=steps, seed=0,
                             diffaug="color", checkpoint_every=0, samples_per_class=2)
        # Without data_info, run.json records the selection the source was opened with.
        train(run_dir, source, model_preset(preset, source.num_classes), config, verbose=0)
    base = os.path.join(work, "saved_models", preset)
    if os.path.isdir(base) and os.listdir(base):
        return base
    export_run(run_dir, export_dir=os.path.join(work, "saved_models"), name=preset)
    return base


def time_generate(model, batch_size, seconds, threshold):
    import numpy as np

    from hvitgan_tf.sampling.seeds import attempt_seeds

    classes = len(model.class_names)
    labels = np.arange(batch_size) % classes
    calls, confidences = 0, []
    first = 0
    model.generate(labels, attempt_seeds(1, 0, np.arange(batch_size)), 1.0)  # warm-up
    began = time.perf_counter()
    while calls == 0 or time.perf_counter() - began < seconds:
        seeds = attempt_seeds(0, 0, np.arange(first, first + batch_size))
        confidences.append(model.generate(labels, seeds, 1.0)["confidence"])
        first += batch_size
        calls += 1
    elapsed = time.perf_counter() - began
    confidences = np.concatenate(confidences)
    acceptance = float((confidences >= threshold).mean())
    rate = calls * batch_size / elapsed
    return {"batch_size": batch_size, "calls": calls, "seconds": round(elapsed, 3),
            "generated_per_s": round(rate, 2), "acceptance": round(acceptance, 4),
            "accepted_per_s": round(rate * acceptance, 2),
            "ms_per_image": round(1000 * elapsed / (calls * batch_size), 3)}


def time_sample_run(model, batch_size, images):
    from hvitgan_tf.sampling import sample

    out = tempfile.mkdtemp(prefix="hvitgan-bench-sample-")
    try:
        per_class = max(1, images // len(model.class_names))
        report = sample(None, out, per_class=per_class, threshold=0.0, batch_size=batch_size,
                        formats=("png", "tfrecord"), model=model, progress=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    write, wall, gen = report.write_seconds, report.seconds, report.generate_seconds
    return {"batch_size": batch_size, "images": report.written, "generated": report.generated,
            "wall_s": round(wall, 3), "generate_s": round(gen, 3), "write_s": round(write, 3),
            "wait_s": round(report.wait_seconds, 3),
            "generated_per_s": round(report.generated_per_second, 2),
            "written_per_s": round(report.written_per_second, 2),
            "end_to_end_per_s": round(report.written / wall, 2) if wall else None,
            "writer_share": round(write / wall, 4) if wall else None,
            "overlap": round(min(1.0, max(0.0, (gen + write - wall) / write)), 4)
            if write else None,
            "write_ms_per_image": round(1000 * write / report.written, 3)
            if report.written else None}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[],
                        help="saved_models/NAME or a version folder (repeatable)")
    parser.add_argument("--make-export", action="append", default=[], metavar="PRESET",
                        help="train PRESET for 4 iterations on demo data and export it")
    parser.add_argument("--work", default=None, help="folder for --make-export runs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="timing per batch size (after one warm-up call)")
    parser.add_argument("--write-images", type=int, default=512,
                        help="images in the writer-cost run")
    args = parser.parse_args(argv)

    models = list(args.model)
    if args.make_export:
        work = args.work or tempfile.mkdtemp(prefix="hvitgan-bench-")
        models += [make_export(preset, work) for preset in args.make_export]
    if not models:
        parser.error("give --model PATH or --make-export PRESET")

    import tensorflow as tf

    from hvitgan_tf.export import PARALLEL_SAMPLES
    from hvitgan_tf.sampling import ExportedModel

    results = []
    for path in models:
        began = time.perf_counter()
        model = ExportedModel(path)
        load = time.perf_counter() - began
        preset = model.metadata.get("model_config", {}).get("preset")
        entry = {"model": model.model_dir, "preset": preset,
                 "image_size": model.image_size, "load_s": round(load, 2),
                 "threshold": args.threshold,
                 "generate": [time_generate(model, b, args.seconds, args.threshold)
                              for b in args.batch_sizes]}
        best = max(entry["generate"], key=lambda r: r["generated_per_s"])
        entry["writer"] = time_sample_run(model, best["batch_size"], args.write_images)
        results.append(entry)
    print(json.dumps({
        "benchmark": "sampling",
        "tensorflow": tf.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "parallel_samples": PARALLEL_SAMPLES,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    sys.exit(main())
