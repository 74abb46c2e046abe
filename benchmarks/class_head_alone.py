"""How fast does the discriminator's class head learn on its own? (No critic, no generator.)

    python benchmarks/class_head_alone.py --data glyphs --steps 300
    python benchmarks/class_head_alone.py --data glyphs --beta-1 0.9 --lr 1e-3 --diffaug none

Trains only the discriminator of a preset with the cross-entropy of its class head on real
training images, batch after batch from the same stream as ``hvitgan-tf train``, and prints one
JSON line per ``--every`` steps with the validation accuracy. It separates "the class path
learns slowly" from "the critic terms crowd the class signal out" (docs/method.md §11.7, §11.9).
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="glyphs")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps")
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--beta-1", type=float, default=0.0)
    parser.add_argument("--diffaug", default="none", help="DiffAugment policy on the inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE",
                        help="change a discriminator option, prefixed d_ (e.g. d_patch_size=4)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from hvitgan_tf.data import open_source
    from hvitgan_tf.models import build_discriminator, preset
    from hvitgan_tf.training.data_stream import make_training_stream, training_examples
    from hvitgan_tf.training.diffaugment import DiffAugment

    source = open_source(args.data, seed=args.seed)
    config = preset(args.preset, source.num_classes)
    if args.overrides:
        from learning import split_overrides

        train_changes, model_changes = split_overrides(args.overrides)
        if train_changes:
            raise SystemExit(f"--set: only model options apply here, not {sorted(train_changes)}")
        config = config.replace(**model_changes)
    size = config.image_size
    keras.utils.set_random_seed(args.seed)
    discriminator = build_discriminator(config.discriminator)
    optimizer = keras.optimizers.Adam(args.lr, beta_1=args.beta_1, beta_2=0.99)
    augment = DiffAugment(args.diffaug)
    stream = iter(make_training_stream(
        tf.distribute.get_strategy(), training_examples(source, size, args.seed),
        batch_size=args.batch_size, n_critic=1))
    images, labels = next(iter(source.examples("validation", size).batch(10 ** 6)))

    @tf.function
    def step(x, y, seed):
        x = augment.apply(x, augment.sample_params(args.batch_size, size, seed))
        with tf.GradientTape() as tape:
            _, logits = discriminator(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, logits, from_logits=True))
        gradients = tape.gradient(loss, discriminator.trainable_variables)
        optimizer.apply(gradients, discriminator.trainable_variables)
        return loss

    started = time.time()
    for i in range(1, args.steps + 1):
        x, y = next(stream)
        loss = step(x[:, 0], y[:, 0], tf.stack([tf.constant(i), tf.constant(args.seed)]))
        if i % args.every == 0 or i == args.steps:
            _, logits = discriminator(images, training=False)
            accuracy = float(np.mean(np.argmax(logits, -1) == labels.numpy()))
            print(json.dumps({"step": i, "loss": round(float(loss), 4),
                              "validation_accuracy": round(accuracy, 4),
                              "seconds": round(time.time() - started, 1), **vars(args)}),
                  flush=True)


if __name__ == "__main__":
    main()
