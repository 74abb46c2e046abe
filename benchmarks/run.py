"""How fast hvitgan-tf trains and samples, measured against this machine's own limit.

    python benchmarks/run.py                         # tiny, small, pcam96 at batch 12; graph + XLA
    python benchmarks/run.py --presets small --batch-sizes 8 16 --repeats 5 --json out.json
    python benchmarks/run.py --presets pcam96 --variants graph xla bf16 xla-bf16

Prints a short table on stdout and the full results as one JSON document (``--json FILE`` also
writes it to a file). Every row is measured in a child process of its own, so its peak memory
is that of one training process and no row inherits another's caches.

Per preset, batch size and variant (``graph``: a ``tf.function``; ``xla``: compiled with XLA,
what ``hvitgan-tf train`` does by default; ``bf16`` / ``xla-bf16``: the same under
``mixed_bfloat16``):

* ``flops``: analytic FLOPs (``hvitgan_tf.models.flops`` and
  ``hvitgan_tf.training.gan.iteration_flops``) of one generator forward, one discriminator
  forward and one training iteration -- ``n_critic`` critic steps (the fakes' generator
  forward, D forward + backward on reals and fakes, and the gradient penalty's double backward)
  plus one generator step. Matrix products only; what is left out is listed in
  ``hvitgan_tf/models/flops.py`` (elementwise work: a few per cent).
* ``train``: seconds per iteration of the real ``HViTGAN.train_step`` (DiffAugment, losses,
  clipping, Adam and EMA included) on in-memory batches, median of ``--repeats`` timed
  iterations after ``--warmup`` untimed ones; the first call (trace + graph optimisation) is
  reported apart as ``first_call_s``. ``gflop_per_s`` = analytic FLOPs / median seconds and
  ``of_ceiling`` = that / the matmul ceiling.
* ``input_pipeline``: images per second the real training ``tf.data`` stream delivers on its
  own (demo data resized to the preset, the same shuffling/batching as ``train``), beside the
  images per second the training step consumes: the pipeline must be the faster one.
* ``peak_rss_gib``: peak resident memory of the process after the training measurements.
* ``sampling`` (skipped with ``--no-sampling``): the trained-for-zero-steps networks are
  exported as the SavedModel ``hvitgan-tf sample`` and TF Serving use; then
  ``generate`` alone (the model's rate: seconds per 1,000 generated-and-classified samples and
  GFLOP/s of G + D forward), and one ``hvitgan_tf.sampling.sample`` run that writes PNGs
  (end-to-end seconds per 1,000, the writer thread's busy time, and ``writer_cost`` = the share
  of end-to-end time the writing adds on top of generation).

The ceiling is the best rate of a large float32 ``tf.linalg.matmul``, measured in the same run
(on a GPU the same code measures that device). Timings on a shared machine are noisy: the load
average is recorded, and comparisons between variants should be made within one run.
"""
import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
GIB = 1024 ** 3
VARIANTS = {"graph": (), "xla": ("jit",), "bf16": ("mixed-precision",),
            "xla-bf16": ("jit", "mixed-precision")}


def _rss_gib():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def _median_seconds(run, warmup, repeats):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _analytic(model_config, batch, n_critic, class_gradient_share=None):
    from hvitgan_tf.training.config import TrainConfig
    from hvitgan_tf.training.gan import class_pass_images, iteration_flops

    if class_gradient_share is None:
        class_gradient_share = TrainConfig.class_gradient_share
    return iteration_flops(model_config, batch, n_critic, class_gradient_share,
                           class_pass_images(TrainConfig()))


def measure_training(args, model_config, train_config):
    """Median seconds per ``train_step`` and the first call's seconds."""
    import numpy as np
    import tensorflow as tf

    from hvitgan_tf.training.gan import HViTGAN

    batch, n_critic, size = train_config.batch_size, train_config.n_critic, model_config.image_size
    model = HViTGAN(model_config, train_config, [1] * model_config.num_classes)
    model.compile(jit_compile=train_config.jit)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (batch, n_critic, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, model_config.num_classes, (batch, n_critic)), tf.int32)
    step = tf.function(model.train_step, jit_compile=train_config.jit or None)

    def run():
        logs = step((images, labels))
        return float(logs["d_loss"])  # waits for the step to finish

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    median, times = _median_seconds(run, args.warmup, args.repeats)
    return model, first, median, times


def measure_input_pipeline(args, model_config, train_config):
    """Images/s of the training stream alone (single device, demo data)."""
    import tensorflow as tf

    from hvitgan_tf.data import open_source
    from hvitgan_tf.training.data_stream import make_training_stream, training_examples

    source = open_source("demo")
    examples = training_examples(source, model_config.image_size, seed=0)
    stream = make_training_stream(tf.distribute.get_strategy(), examples,
                                  batch_size=train_config.batch_size,
                                  n_critic=train_config.n_critic)
    iterator = iter(stream)
    for _ in range(3):
        next(iterator)
    batches, start = 0, time.perf_counter()
    while batches < 5 or time.perf_counter() - start < args.pipeline_seconds:
        next(iterator)[0].numpy()
        batches += 1
    elapsed = time.perf_counter() - start
    return batches * train_config.batch_size * train_config.n_critic / elapsed


def export_untrained(model, model_config, train_config, work):
    """Save ``model`` as a run folder and export it (what ``hvitgan-tf train`` leaves)."""
    from hvitgan_tf.export import export_run
    from hvitgan_tf.fileio import write_json
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.runner import run_file

    run_dir = os.path.join(work, "run")
    os.makedirs(run_dir)
    names = [f"class_{i}" for i in range(model_config.num_classes)]
    write_json(run_file(run_dir), {
        "model": model_config.to_dict(), "train": train_config.to_dict(),
        "data": {"spec": "benchmark", "class_names": names,
                 "class_counts": [1] * len(names), "num_train": 0}})
    checkpoints.save(model, run_dir, int(model.iterations_done.numpy()), epoch=0)
    return export_run(run_dir, export_dir=os.path.join(work, "saved_models"), name="bench")


def measure_sampling(args, model_dir, forward_flops_per_sample):
    import numpy as np

    from hvitgan_tf.sampling import ExportedModel, sample
    from hvitgan_tf.sampling.seeds import attempt_seeds

    model = ExportedModel(model_dir)
    batch = args.sample_batch
    classes = len(model.class_names)
    labels = np.arange(batch) % classes

    first = [0]

    def run():
        seeds = attempt_seeds(0, 0, np.arange(first[0], first[0] + batch))
        first[0] += batch
        return model.generate(labels, seeds, 1.0)["confidence"]

    median, _ = _median_seconds(run, 1, args.repeats)
    generate_per_1000 = 1000 * median / batch

    out = tempfile.mkdtemp(prefix="hvitgan-bench-sample-")
    try:
        report = sample(None, out, num=args.sample_num, threshold=0.0, batch_size=batch,
                        formats=("png",), model=model, progress=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    written = max(report.written, 1)
    end_to_end_per_1000 = 1000 * report.seconds / written
    generation_only = 1000 * report.generate_seconds / written
    return {
        "batch_size": batch,
        "generate_s_per_1000": round(generate_per_1000, 3),
        "generate_gflop_per_s": round(forward_flops_per_sample * batch / median / 1e9, 2),
        "end_to_end_s_per_1000": round(end_to_end_per_1000, 3),
        "end_to_end_generate_s_per_1000": round(generation_only, 3),
        "writer_busy_s_per_1000": round(1000 * report.write_seconds / written, 3),
        "writer_wait_s_per_1000": round(1000 * report.wait_seconds / written, 3),
        "writer_cost": round(max(0.0, report.seconds - report.generate_seconds)
                             / report.seconds, 4) if report.seconds else None,
        "images_written": report.written,
    }


def child(args):
    """One preset and batch size, in this process; prints one JSON row."""
    import keras

    from hvitgan_tf.models.config import preset
    from hvitgan_tf.training.config import TrainConfig

    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model_config = preset(args.child_preset, num_classes=2)
    train_config = TrainConfig(batch_size=args.child_batch, n_critic=args.n_critic,
                               jit=args.jit, mixed_precision=args.mixed_precision)
    keras.utils.set_random_seed(0)
    flops = _analytic(model_config, args.child_batch, args.n_critic)
    row = {"preset": args.child_preset, "batch_size": args.child_batch,
           "n_critic": args.n_critic, "jit": args.jit,
           "mixed_precision": args.mixed_precision,
           "flops": {k: int(v) for k, v in flops.items()}}
    model, first, median, times = measure_training(args, model_config, train_config)
    row["train"] = {"first_call_s": round(first, 2), "s_per_iteration": round(median, 4),
                    "s_per_iteration_runs": [round(t, 4) for t in times],
                    "gflop_per_s": round(flops["iteration"] / median / 1e9, 2),
                    "consumed_images_per_s": round(
                        args.child_batch * args.n_critic / median, 2)}
    row["peak_rss_gib"] = round(_rss_gib(), 3)
    row["input_pipeline_images_per_s"] = round(
        measure_input_pipeline(args, model_config, train_config), 1)
    if not args.no_sampling:
        work = tempfile.mkdtemp(prefix="hvitgan-bench-run-")
        try:
            model_dir = export_untrained(model, model_config, train_config, work)
            per_sample = (flops["generator_forward_per_image"]
                          + flops["discriminator_forward_per_image"])
            row["sampling"] = measure_sampling(args, model_dir, per_sample)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(row), flush=True)


def _table(results, ceiling):
    header = (f"{'preset':8} {'batch':>5} {'variant':8} {'GFLOP/it':>9} {'s/it':>8} {'GFLOP/s':>8} "
              f"{'ceil%':>6} {'RSS GiB':>8} {'pipe img/s':>10} {'step img/s':>10} "
              f"{'gen s/1k':>9} {'gen ceil%':>9} {'e2e s/1k':>9} {'writer%':>8}")
    lines = [f"matmul ceiling: {ceiling:.1f} GFLOP/s", header]
    for r in results:
        if "error" in r:
            lines.append(f"{r['preset']:8} {r['batch_size']:>5} {r['variant']:8} failed: "
                         f"{r['error']}")
            continue
        s = r.get("sampling") or {}
        gen_ratio = (100 * s["generate_gflop_per_s"] / ceiling) if s else float("nan")
        lines.append(
            f"{r['preset']:8} {r['batch_size']:>5} {r['variant']:8} "
            f"{r['flops']['iteration'] / 1e9:>9.1f} "
            f"{r['train']['s_per_iteration']:>8.3f} {r['train']['gflop_per_s']:>8.1f} "
            f"{100 * r['train']['of_ceiling']:>6.1f} {r['peak_rss_gib']:>8.2f} "
            f"{r['input_pipeline_images_per_s']:>10.0f} "
            f"{r['train']['consumed_images_per_s']:>10.1f} "
            f"{s.get('generate_s_per_1000', float('nan')):>9.2f} {gen_ratio:>9.1f} "
            f"{s.get('end_to_end_s_per_1000', float('nan')):>9.2f} "
            f"{100 * (s.get('writer_cost') or 0):>8.1f}")
    return "\n".join(lines)


def parent(args):
    import tensorflow as tf
    from model_forward import matmul_ceiling

    ceiling = matmul_ceiling(size=args.matmul_size, seconds=args.matmul_seconds)
    print(f"matmul ceiling {ceiling:.1f} GFLOP/s", file=sys.stderr)
    results = []
    runs = [(name, batch, variant) for name in args.presets for batch in args.batch_sizes
            for variant in args.variants]
    for name, batch, variant in runs:
        command = [sys.executable, os.path.abspath(__file__), "--child-preset", name,
                   "--child-batch", str(batch)] + _passthrough(args)
        command += [f"--{flag}" for flag in VARIANTS[variant]]
        if variant != args.variants[0]:
            command.append("--no-sampling")  # the export does not depend on the variant
        print(f"{name} batch {batch} {variant} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode or not lines:
            results.append({"preset": name, "batch_size": batch, "variant": variant,
                            "error": f"child exited with {done.returncode}"})
            continue
        row = json.loads(lines[-1])
        row["variant"] = variant
        row["train"]["of_ceiling"] = round(row["train"]["gflop_per_s"] / ceiling, 4)
        if "sampling" in row:
            row["sampling"]["generate_of_ceiling"] = round(
                row["sampling"]["generate_gflop_per_s"] / ceiling, 4)
        row["wall_s"] = round(time.perf_counter() - began, 1)
        print(json.dumps(row), file=sys.stderr, flush=True)
        results.append(row)
    ceiling_after = matmul_ceiling(size=args.matmul_size, seconds=args.matmul_seconds)
    document = {
        "benchmark": "run",
        "tensorflow": tf.__version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "devices": [d.device_type for d in tf.config.list_physical_devices()],
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "matmul_ceiling_gflop_per_s": round(ceiling, 2),
        "matmul_ceiling_after_gflop_per_s": round(ceiling_after, 2),
        "results": results,
        "speedups": _speedups(results, args.variants[0]),
    }
    print(_table(results, ceiling))
    for key, ratio in document["speedups"].items():
        print(f"{key}: {ratio:.2f}x")
    print(f"matmul ceiling again at the end: {ceiling_after:.1f} GFLOP/s")
    text = json.dumps(document, indent=2)
    print(text)
    if args.json:
        from hvitgan_tf.fileio import atomic_open

        with atomic_open(args.json, "w") as f:
            f.write(text + "\n")
    return 1 if any("error" in r for r in results) else 0


def _speedups(results, baseline):
    """``{"small b12: xla vs graph": seconds ratio}`` for every variant against the first."""
    base = {(r["preset"], r["batch_size"]): r["train"]["s_per_iteration"]
            for r in results if r.get("variant") == baseline and "train" in r}
    out = {}
    for r in results:
        key = (r["preset"], r["batch_size"])
        if r.get("variant") != baseline and "train" in r and key in base:
            out[f"{key[0]} b{key[1]}: {r['variant']} vs {baseline}"] = round(
                base[key] / r["train"]["s_per_iteration"], 3)
    return out


def _passthrough(args):
    out = ["--n-critic", str(args.n_critic), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--sample-batch", str(args.sample_batch),
           "--sample-num", str(args.sample_num),
           "--pipeline-seconds", str(args.pipeline_seconds)]
    if args.no_sampling:
        out.append("--no-sampling")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "pcam96"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[12])
    parser.add_argument("--n-critic", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations after the "
                        "first call")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations (median)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS),
                        default=["graph", "xla"], help="training step variants to compare")
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mixed-precision", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-sampling", action="store_true")
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--sample-num", type=int, default=1000,
                        help="images in the end-to-end sampling run")
    parser.add_argument("--pipeline-seconds", type=float, default=3.0)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    parser.add_argument("--json", help="also write the JSON document here")
    parser.add_argument("--child-preset", help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_preset:
        return child(args)
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
