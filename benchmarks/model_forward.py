"""Forward throughput of the HViTGAN generator and discriminator per preset, as JSON on stdout.

    python benchmarks/model_forward.py [--presets tiny small pcam96] [--batch-size 16]
                                       [--repeats 5] [--min-seconds 2] [--train-step]
                                       [--policy mixed_bfloat16] [--jit-compile]

For each preset it builds G and D (parameter counts reported), wraps ``G([z, y])`` and ``D(x)``
in ``tf.function`` at a fixed batch size, warms up (trace + one call, reported as ``warmup_s``),
then times ``--repeats`` rounds of at least ``--min-seconds / --repeats`` each and reports the
median round as ``ms_per_batch`` / ``images_per_s`` (all rounds in ``ms_per_batch_rounds``; on a
shared machine the spread shows how much the neighbours interfered). ``--train-step`` adds the
forward + backward pass of ``sum(D(G(z, y)))`` w.r.t. both networks' weights.
``--jit-compile`` compiles each function with XLA (one device only: docs/keras3-notes.md §2.5).

FLOPs come from TensorFlow's graph profiler on the traced function (static shapes), so they
count what actually runs: ``matmul_gflop_per_image`` (MatMul / BatchMatMul only) and
``achieved_matmul_gflop_per_s``, next to ``matmul_ceiling_gflop_per_s``, the best rate of one
large float32 matmul on this machine (what ">= 50 % of the ceiling" is measured against).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _matmul_flops(concrete_function):
    """FLOPs of the matmuls in a traced function (shapes must be static)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    options["account_type_regexes"] = ["MatMul", "BatchMatMul.*"]
    return int(model_analyzer.profile(concrete_function.graph, options=options).total_float_ops)


def _time_rounds(run, min_seconds, repeats):
    """Warm-up seconds (first two calls), then the per-call seconds of each timing round."""
    start = time.perf_counter()
    run()
    run()
    warmup = time.perf_counter() - start
    rounds = []
    for _ in range(repeats):
        calls, elapsed = 0, 0.0
        start = time.perf_counter()
        while calls < 1 or elapsed < min_seconds / repeats:
            run()
            calls += 1
            elapsed = time.perf_counter() - start
        rounds.append(elapsed / calls)
    return warmup, rounds


def matmul_ceiling(size=2048, seconds=2.0):
    """Best GFLOP/s of a ``size x size`` float32 matmul (the machine's practical ceiling)."""
    import tensorflow as tf

    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    b = tf.random.stateless_normal([size, size], seed=[3, 4])
    product = tf.function(lambda: tf.linalg.matmul(a, b))
    product().numpy()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def _benchmark(name, fn, signature, arguments, batch, args):
    """Trace ``fn`` at a static batch, count its matmul FLOPs, time it; one report row."""
    import tensorflow as tf

    traced = tf.function(fn, input_signature=signature, jit_compile=args.jit_compile)
    start = time.perf_counter()
    concrete = traced.get_concrete_function()
    trace_s = time.perf_counter() - start
    flops = _matmul_flops(concrete)

    def run():
        # .numpy() on every output waits for the computation to finish.
        return [t.numpy() for t in tf.nest.flatten(traced(*arguments), expand_composites=True)]

    warmup, rounds = _time_rounds(run, args.min_seconds, args.repeats)
    median = statistics.median(rounds)
    row = {
        "network": name,
        "batch": batch,
        "trace_s": round(trace_s, 3),
        "warmup_s": round(warmup, 3),
        "ms_per_batch": round(1e3 * median, 3),
        "images_per_s": round(batch / median, 2),
        "ms_per_batch_rounds": [round(1e3 * t, 3) for t in rounds],
        "matmul_gflop_per_image": round(flops / batch / 1e9, 4),
        "achieved_matmul_gflop_per_s": round(flops / median / 1e9, 2),
    }
    print(json.dumps(row), file=sys.stderr)  # progress; stdout is the report
    return row


def benchmark_preset(preset_name, args):
    import numpy as np
    import tensorflow as tf

    from hvitgan_tf.models import build_discriminator, build_generator, preset

    cfg = preset(preset_name, num_classes=args.num_classes)
    generator = build_generator(cfg.generator)
    discriminator = build_discriminator(cfg.discriminator)
    batch, size = args.batch_size, cfg.image_size
    rng = np.random.default_rng(0)
    z = tf.constant(rng.standard_normal((batch, cfg.latent_dim)), tf.float32)
    labels = tf.constant(np.arange(batch) % cfg.num_classes, tf.int32)
    images = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
    z_spec = tf.TensorSpec([batch, cfg.latent_dim], tf.float32)
    label_spec = tf.TensorSpec([batch], tf.int32)
    image_spec = tf.TensorSpec([batch, size, size, 3], tf.float32)

    rows = [
        _benchmark("generator", lambda z, y: generator([z, y], training=False),
                   [z_spec, label_spec], (z, labels), batch, args),
        _benchmark("discriminator", lambda x: discriminator(x, training=False),
                   [image_spec], (images,), batch, args),
    ]
    if args.train_step:
        variables = generator.trainable_variables + discriminator.trainable_variables

        def step(z, y):
            with tf.GradientTape() as tape:
                source, logits = discriminator(generator([z, y], training=True),
                                               training=True)
                loss = tf.reduce_sum(source) + tf.reduce_sum(logits)
            return tape.gradient(loss, variables)

        rows.append(_benchmark("generator+discriminator forward+backward", step,
                               [z_spec, label_spec], (z, labels), batch, args))
    return {
        "preset": preset_name,
        "image_size": size,
        "generator_parameters": int(generator.count_params()),
        "discriminator_parameters": int(discriminator.count_params()),
        "results": rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "pcam96"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timing rounds; median reported")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="total timing per network (split over the rounds)")
    parser.add_argument("--train-step", action="store_true",
                        help="also time forward + backward of D(G(z, y)) w.r.t. all weights")
    parser.add_argument("--policy", default="float32",
                        help="Keras dtype policy, e.g. mixed_bfloat16")
    parser.add_argument("--jit-compile", action="store_true", help="compile with XLA")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.policy)
    ceiling = matmul_ceiling()
    presets = [benchmark_preset(name, args) for name in args.presets]
    for entry in presets:
        for row in entry["results"]:
            row["fraction_of_matmul_ceiling"] = round(
                row["achieved_matmul_gflop_per_s"] / ceiling, 3)
    report = {
        "benchmark": "model_forward",
        "policy": args.policy,
        "jit_compile": args.jit_compile,
        "batch_size": args.batch_size,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "matmul_ceiling_gflop_per_s": round(ceiling, 2),
        "presets": presets,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
