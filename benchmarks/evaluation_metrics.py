"""How long the evaluation building blocks take on this machine (CPU).

    python benchmarks/evaluation_metrics.py [--quick]

Reports: streaming FID/KID metric updates and ``result()`` at Inception's 2048 dimensions, the
InceptionV3 extractor's throughput (random weights: the speed does not depend on them), and
one training step of each benchmark classifier on 32 px images (defaults and the small CPU
variants), which tells whether a benchmark run fits in minutes. Timings exclude the first call
(tracing). Nothing is written.
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def timed(label, function, repeats=3):
    function()  # warm-up / tracing
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    seconds = (time.perf_counter() - start) / repeats
    print(f"{label:<62s} {seconds * 1000:10.1f} ms")
    return seconds


def feature_metrics(quick):
    from hvitgan_tf.metrics.feature_metrics import (FrechetInceptionDistance,
                                                    KernelInceptionDistance)

    d = 2048
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(256, d)).astype(np.float32)
    fid = FrechetInceptionDistance(d)
    timed("FID update_state, 256 real + 256 fake vectors (d=2048)",
          lambda: fid.update_state(real_features=batch, fake_features=batch))
    timed("FID result() (two 2048x2048 eigendecompositions)", fid.result, repeats=1)
    n = 1000 if quick else 5000
    kid = KernelInceptionDistance(d, max_samples=n, num_subsets=10 if quick else 100)
    feats = rng.normal(size=(n, d)).astype(np.float32)
    timed(f"KID update_state, 256 vectors into a {n}-row sample",
          lambda: kid.update_state(real_features=batch, fake_features=batch))
    kid.reset_state()
    kid.update_state(real_features=feats, fake_features=feats[::-1])
    timed(f"KID result(), {kid.num_subsets} subsets of {min(n, kid.subset_size)}", kid.result,
          repeats=1)


def inception(quick):
    import keras

    from hvitgan_tf.metrics.feature_extractors import get_feature_extractor

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "random.weights.h5")
        keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                       input_shape=(299, 299, 3)).save_weights(path)
        extractor = get_feature_extractor("inception", inception_weights=path, batch_size=16)
        images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
        seconds = timed("InceptionV3 features of 16 images (32 px -> 299 px)",
                        lambda: extractor(images), repeats=1 if quick else 3)
        print(f"{'  -> images per second':<62s} {16 / seconds:10.1f}")


def classifiers(quick):
    import keras

    from hvitgan_tf.evaluation.classifiers import build_classifier

    variants = [("resnet34", {}), ("resnet34", dict(width_multiplier=0.25, small_input=True)),
                ("resnet50_cbam", {}),
                ("resnet50_cbam", dict(width_multiplier=0.25, small_input=True)),
                ("densenet169", {})]
    if quick:
        variants = variants[1:2]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (32, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    for name, options in variants:
        model = build_classifier(name, (32, 32, 3), 2, **options)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy")
        label = f"{name} {options or '(default)'} train step, batch 32 @ 32 px"
        timed(label[:62], lambda: model.train_on_batch(x, y), repeats=3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer models")
    args = parser.parse_args()
    feature_metrics(args.quick)
    inception(args.quick)
    classifiers(args.quick)


if __name__ == "__main__":
    main()
