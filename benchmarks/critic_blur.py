"""Does the critic notice that a patch is blurred? (docs/method.md §11.22)

    python benchmarks/critic_blur.py --data demo                  # critic alone, per policy
    python benchmarks/critic_blur.py --policies translation --blur-share 0.5 --fakes-from runs/demo
    python benchmarks/critic_blur.py --run runs/demo              # a trained run's critic

Two measurements, each printed as JSON lines.

*Critic alone* (default): for every DiffAugment policy in ``--policies`` (same run, same seed,
same batches), a fresh discriminator of the preset is trained with the training's own critic loss
(``HViTGAN.critic_terms``: WGAN-GP, drift, projection, class terms), optimiser, clipping and
augmentation, but its "fakes" are the real batch blurred by a Gaussian of ``--sigma`` pixels.
Every ``--every`` steps it reports, on the validation split without augmentation, the mean score
of the real patches minus that of the same patches blurred (``gap``) and the share of patches
whose real version scores higher (``ranked``; 0.5 = blind). A critic that cannot learn this on
its own cannot ask the generator for sharp detail either. With ``--blur-share S --fakes-from
RUN`` only a share S of each batch's fakes are blurred real patches and the rest are samples of
that run's (frozen, live) generator, as in GAN training with blurred patches as extra fakes.

*A trained run* (``--run``): the run's last checkpoint scores the validation patches, the same
patches blurred at several sigmas, and the EMA and live generators' samples for the same labels.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEFAULT_POLICIES = "color,translation;translation;color;none"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="demo")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=400, help="critic steps per policy")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--sigma", type=float, default=1.0,
                        help="Gaussian blur of the 'fake' patches, in pixels")
    parser.add_argument("--policies", default=DEFAULT_POLICIES,
                        help="DiffAugment policies to compare, separated by ';' "
                             f"(default: {DEFAULT_POLICIES!r}; 'none' = no augmentation)")
    parser.add_argument("--blur-share", type=float, default=1.0,
                        help="critic alone: share of each batch's fakes that are blurred real "
                             "patches; the rest come from --fakes-from's generator")
    parser.add_argument("--fakes-from", default=None, metavar="RUN",
                        help="critic alone: the run whose (live, frozen) generator makes the "
                             "fakes that are not blurred real patches")
    parser.add_argument("--run", default=None,
                        help="score this run's last checkpoint instead of training critics")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="change a training or model option")
    args = parser.parse_args(argv)
    if not 0.0 <= args.blur_share <= 1.0:
        parser.error(f"--blur-share must be in [0, 1], got {args.blur_share}")
    if args.blur_share < 1.0 and not args.fakes_from:
        parser.error("--blur-share below 1 needs --fakes-from RUN for the other fakes")
    return args


def projected_scores(gan, images, labels):
    """The critic's score as the WGAN terms use it (source score plus, with the projection
    critic, the class logit of the label), ``[N]`` numpy, no augmentation."""
    import numpy as np
    import tensorflow as tf

    from hvitgan_tf.training.gan import _project

    out = []
    for start in range(0, len(images), 256):
        source, logits = gan.discriminator(tf.constant(images[start:start + 256]),
                                           training=False)
        out.append(_project(gan.train_config, source, tf.cast(logits, tf.float32),
                            tf.constant(labels[start:start + 256], tf.int32)).numpy())
    return np.concatenate(out)


def blur(images, sigma):
    import tensorflow as tf

    from hvitgan_tf.training.gan import gaussian_blur

    return gaussian_blur(tf.constant(images, tf.float32), sigma).numpy()


def gap_record(gan, images, labels, sigma):
    real = projected_scores(gan, images, labels)
    blurred = projected_scores(gan, blur(images, sigma), labels)
    return {"gap": round(float((real - blurred).mean()), 4),
            "ranked": round(float((real > blurred).mean()), 4)}


def critic_alone(args):
    import keras
    import tensorflow as tf

    from hvitgan_tf.data import open_source
    from hvitgan_tf.evaluation.learning import real_arrays
    from hvitgan_tf.models.config import preset
    from hvitgan_tf.training.config import TrainConfig, data_train_defaults
    from hvitgan_tf.training.data_stream import make_training_stream, training_examples
    from hvitgan_tf.training.gan import HViTGAN, gaussian_blur
    from learning import split_overrides

    source = open_source(args.data, seed=args.seed)
    train_changes, model_changes = split_overrides(args.overrides)
    model_config = preset(args.preset, source.num_classes, data=args.data)
    if model_changes:
        model_config = model_config.replace(**model_changes)
    size = model_config.image_size
    images, labels = real_arrays(source, "validation", size)
    generator = None if args.blur_share == 1.0 else load_trained(args.fakes_from)[0].generator
    summary = {}
    for policy in [p.strip() for p in args.policies.split(";") if p.strip()]:
        keras.utils.set_random_seed(args.seed)
        train_config = TrainConfig(seed=args.seed, **{**data_train_defaults(args.data),
                                                      **train_changes, "diffaug": policy})
        batch = train_config.batch_size
        gan = HViTGAN(model_config, train_config, source.class_counts("train"))
        gan.compile()
        stream = iter(make_training_stream(
            tf.distribute.get_strategy(), training_examples(source, size, args.seed),
            batch_size=batch, n_critic=1))

        blurred_rows = int(round(args.blur_share * batch))

        @tf.function
        def step(real, real_labels, iteration):
            draws = gan._draw(iteration, 0, batch, 0, batch)
            # The blurred copies carry their own labels, as a fake of that class would; the
            # generated rows keep the labels drawn for them.
            fake_labels = tf.concat([tf.cast(real_labels[:blurred_rows],
                                             draws["fake_labels"].dtype),
                                     draws["fake_labels"][blurred_rows:]], 0)
            draws = {**draws, "fake_labels": fake_labels}
            fake = gaussian_blur(real[:blurred_rows], args.sigma)
            if generator is not None:
                generated = generator([draws["z"], fake_labels], training=False)
                fake = tf.concat([fake, tf.cast(generated[blurred_rows:], real.dtype)], 0)
            gradients, _ = gan._critic_gradients(real, real_labels, fake, draws, 1.0 / batch, 1)
            gan.d_optimizer.apply(gan._clip(gradients), gan.d_variables)

        started = time.time()
        for i in range(args.steps + 1):
            if i % args.every == 0 or i == args.steps:
                record = {"policy": policy, "step": i, "sigma": args.sigma,
                          "blur_share": args.blur_share,
                          **gap_record(gan, images, labels, args.sigma),
                          "seconds": round(time.time() - started, 1)}
                print(json.dumps(record), flush=True)
            if i == args.steps:
                break
            x, y = next(stream)
            step(tf.cast(x[:, 0], tf.float32), y[:, 0], tf.constant(i, tf.int64))
        summary[policy] = {k: record[k] for k in ("gap", "ranked")}
    print(json.dumps({"summary": summary, "steps": args.steps, "sigma": args.sigma,
                      "blur_share": args.blur_share, "fakes_from": args.fakes_from,
                      "data": args.data, "preset": args.preset}), flush=True)


def load_trained(run_dir):
    """``(HViTGAN with the run's last checkpoint, data_info, checkpoint path)``."""
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.gan import HViTGAN
    from hvitgan_tf.training.runner import load_run

    model_config, train_config, info = load_run(run_dir)
    gan = HViTGAN(model_config, train_config, info["class_counts"])
    gan.compile()
    checkpoint = checkpoints.resolve(run_dir, "last")
    gan.load_weights(checkpoint)
    return gan, info, checkpoint


def trained_run(args):
    import numpy as np

    from hvitgan_tf.data import open_source
    from hvitgan_tf.evaluation.learning import generate, real_arrays
    gan, info, checkpoint = load_trained(args.run)
    source = open_source(info["spec"], seed=info["seed"])
    images, labels = real_arrays(source, "validation", gan.model_config.image_size)
    seeds = np.arange(len(labels)) + 10_000
    record = {"run": args.run, "checkpoint": os.path.basename(checkpoint),
              "real": round(float(projected_scores(gan, images, labels).mean()), 4)}
    for sigma in (0.5, 1.0, 1.5):
        record[f"blurred_{sigma}"] = round(float(
            projected_scores(gan, blur(images, sigma), labels).mean()), 4)
    for name, generator in (("ema_samples", gan.ema_generator), ("live_samples", gan.generator)):
        record[name] = round(float(projected_scores(
            gan, generate(generator, labels, seeds), labels).mean()), 4)
    print(json.dumps(record), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.run:
        trained_run(args)
    else:
        critic_alone(args)


if __name__ == "__main__":
    main()
