"""Throughput of the DiffAugment layer (docs/method.md §5), as JSON on stdout.

    python benchmarks/diffaugment.py [--policy P] [--sizes 32 96] [--batches 16 64]
                                     [--modes eager function jit] [--min-seconds 1.0]

For every (image size, batch, mode) it times ``aug(images, seed)`` (sampling + applying) with
a fresh seed per call, after a warm-up call that also pays for tracing / XLA compilation
(reported separately as ``warmup_s``). ``--gradient`` times the forward pass plus the gradient
w.r.t. the images instead, which is what a critic step pays. For ``jit`` it also reports
the largest difference from the plain graph result (same parameters; XLA may fuse
multiply-adds, so expect float rounding, not 0).

Timing is split into ``--repeats`` rounds and the best round is reported as ``ms_per_batch``
(the least disturbed one, as ``timeit`` does; on a shared machine the others measure the
neighbours), with every round in ``ms_per_batch_rounds``.
"""
import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _runner(aug, mode, gradient):
    import tensorflow as tf

    def forward(images, seed):
        if not gradient:
            return aug(images, seed)
        with tf.GradientTape() as tape:
            tape.watch(images)
            out = aug(images, seed)
            total = tf.reduce_sum(tf.square(tf.cast(out, tf.float32)))
        return tape.gradient(total, images)

    if mode == "eager":
        return forward
    if mode == "function":
        return tf.function(forward)
    if mode == "jit":
        return tf.function(forward, jit_compile=True)
    raise ValueError(f"unknown mode {mode!r}")


def _measure(run, images, min_seconds, repeats):
    """Warm-up time, then per-call seconds of each of `repeats` timing rounds."""
    import tensorflow as tf

    start = time.perf_counter()
    reference = run(images, tf.constant([0, 0], tf.int64)).numpy()
    warmup = time.perf_counter() - start
    per_call, seed = [], 1
    for _ in range(repeats):
        calls, elapsed = 0, 0.0
        start = time.perf_counter()
        while elapsed < min_seconds / repeats or calls < 2:
            run(images, tf.constant([seed, 0], tf.int64)).numpy()  # .numpy() waits for it
            calls += 1
            seed += 1
            elapsed = time.perf_counter() - start
        per_call.append(elapsed / calls)
    return reference, warmup, per_call


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=None, help="default: the package default policy")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--modes", nargs="+", default=["eager", "function", "jit"],
                        choices=["eager", "function", "jit"])
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="time each configuration for at least this long")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; best is reported")
    parser.add_argument("--gradient", action="store_true",
                        help="time forward + gradient w.r.t. the images")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from hvitgan_tf.training.diffaugment import DEFAULT_POLICY, DiffAugment

    policy = DEFAULT_POLICY if args.policy is None else args.policy
    aug = DiffAugment(policy)
    results = []
    for size in args.sizes:
        for batch in args.batches:
            images = tf.random.stateless_uniform([batch, size, size, 3], seed=[1, 2],
                                                 minval=-1.0, maxval=1.0)
            graph_reference = None
            for mode in args.modes:
                row = {"image_size": size, "batch": batch, "mode": mode}
                try:
                    reference, warmup, per_call = _measure(
                        _runner(aug, mode, args.gradient), images, args.min_seconds,
                        args.repeats)
                except Exception as error:  # e.g. an op without an XLA kernel
                    row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
                    results.append(row)
                    continue
                if mode == "function":
                    graph_reference = reference
                if mode == "jit" and graph_reference is not None:
                    row["max_abs_diff_vs_function"] = float(
                        np.max(np.abs(reference.astype(np.float64) - graph_reference)))
                best = min(per_call)
                row.update({
                    "warmup_s": round(warmup, 4),
                    "ms_per_batch": round(1e3 * best, 3),
                    "images_per_s": round(batch / best, 1),
                    "ms_per_batch_rounds": [round(1e3 * t, 3) for t in per_call],
                })
                results.append(row)
                print(json.dumps(row), file=sys.stderr)  # progress; stdout is the report

    report = {
        "benchmark": "diffaugment",
        "policy": list(aug.policy),
        "gradient": args.gradient,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "results": results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
