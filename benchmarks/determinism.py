"""Are two training runs with the same seed bit-identical? Each run is a separate process.

    python benchmarks/determinism.py                              # small on demo, 3 iterations
    python benchmarks/determinism.py --iterations 40 --variant default --variant interop1

Every run trains ``--preset`` on ``--data`` for ``--iterations`` iterations from the same seed,
in its own Python process, with the environment of its variant:

* ``default``: TensorFlow as it starts by itself;
* ``deterministic``: what ``hvitgan-tf train --deterministic`` sets up (one op at a time and
  TensorFlow's op determinism);
* ``interop1``: ``TF_NUM_INTEROP_THREADS=1`` alone (TensorFlow runs one op at a time; each op
  may still use several threads);
* ``opdet``: TensorFlow's op determinism alone;
* ``onednn_off``: ``TF_ENABLE_ONEDNN_OPTS=0``;
* ``intraop1``: ``TF_NUM_INTRAOP_THREADS=1``.

Prints one JSON line per run (variant, seconds per iteration without graph building, a
SHA-256 of every weight and optimizer variable in the last checkpoint, and the largest absolute
difference from the variant's first run) and a summary line per variant: ``identical`` (all
runs hashed the same) and ``seconds_ratio`` (its mean seconds per iteration over the
``default`` variant's, same machine, same session). A variant is only as deterministic as the
number of runs shows.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

#: variant -> (environment, what the worker asks start_tensorflow for)
VARIANTS = {
    "default": ({}, {}),
    "deterministic": ({}, {"deterministic": True}),
    "interop1": ({"TF_NUM_INTEROP_THREADS": "1"}, {}),
    "opdet": ({}, {"op_determinism": True}),
    "onednn_off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
    "intraop1": ({"TF_NUM_INTRAOP_THREADS": "1"}, {}),
}


def _worker(run_dir, data, preset_name, iterations, seed, arrays_out, variant):
    """Train once in this process; print the seconds per iteration and the weights' hash."""
    import dataclasses
    import hashlib

    import h5py
    import numpy as np

    from hvitgan_tf._backend import start_tensorflow

    asks = VARIANTS[variant][1]
    start_tensorflow(deterministic=asks.get("deterministic", False))
    if asks.get("op_determinism"):
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    from hvitgan_tf.data import open_source
    from hvitgan_tf.models.config import preset
    from hvitgan_tf.training.config import TrainConfig, data_train_defaults
    from hvitgan_tf.training.runner import train

    source = open_source(data, seed=seed)
    config = TrainConfig(seed=seed, total_steps=iterations, checkpoint_every=0,
                         **data_train_defaults(data))
    model = preset(preset_name, source.num_classes, data=data)
    # Time per iteration without graph building: a one-iteration run first, in the same
    # process, pays the same tracing; the difference is the other iterations' time.
    start = time.perf_counter()
    train(run_dir + "-warm", source, model, dataclasses.replace(config, total_steps=1),
          verbose=0)
    one = time.perf_counter() - start
    start = time.perf_counter()
    checkpoint = train(run_dir, source, model, config, verbose=0).checkpoint
    seconds = (time.perf_counter() - start - one) / max(iterations - 1, 1)
    digest, arrays = hashlib.sha256(), {}

    def visit(name, item):
        # Metric trackers are running means of the losses, not state the next step reads.
        if isinstance(item, h5py.Dataset) and "metrics" not in name and "tracker" not in name:
            value = item[()]
            digest.update(name.encode() + np.asarray(value).tobytes())
            arrays[name] = np.asarray(value, dtype=np.float64)

    with h5py.File(checkpoint) as handle:
        handle.visititems(visit)
    np.savez(arrays_out, **{k.replace("/", "|"): v for k, v in arrays.items()})
    print(json.dumps({"seconds": seconds, "sha256": digest.hexdigest()}))


def _max_difference(path_a, path_b):
    import numpy as np

    a, b = np.load(path_a), np.load(path_b)
    return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a.files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="processes per variant (default 2)")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="repeatable; default: default and deterministic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", nargs=2, metavar=("RUN_DIR", "ARRAYS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], args.data, args.preset, args.iterations, args.seed,
                args.worker[1], args.variant[0])
        return
    if args.runs < 2:
        parser.error("--runs must be at least 2 to compare runs")
    variants = args.variant or ["default", "deterministic"]
    summary = {}
    with tempfile.TemporaryDirectory(prefix="hvitgan-determinism-") as scratch:
        for variant in variants:
            results = []
            for k in range(args.runs):
                run_dir = os.path.join(scratch, f"{variant}-{k}")
                arrays = os.path.join(scratch, f"{variant}-{k}.npz")
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **VARIANTS[variant][0]}
                done = subprocess.run(
                    [sys.executable, __file__, "--data", args.data, "--preset", args.preset,
                     "--iterations", str(args.iterations), "--seed", str(args.seed),
                     "--variant", variant, "--worker", run_dir, arrays],
                    env=env, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"run {variant}-{k} failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result["max_abs_difference"] = _max_difference(
                    os.path.join(scratch, f"{variant}-0.npz"), arrays)
                result.update(variant=variant, run=k, iterations=args.iterations,
                              data=args.data, preset=args.preset)
                results.append(result)
                print(json.dumps(result), flush=True)
            summary[variant] = {
                "identical": len({r["sha256"] for r in results}) == 1,
                "mean_seconds": sum(r["seconds"] for r in results) / len(results),
                "largest_difference": max(r["max_abs_difference"] for r in results),
            }
    base = summary.get("default", {}).get("mean_seconds")
    for variant, row in summary.items():
        if base:
            row["seconds_ratio"] = row["mean_seconds"] / base
        print(json.dumps({"summary": variant, **row}))


if __name__ == "__main__":
    main()
