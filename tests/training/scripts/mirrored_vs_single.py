"""One training iteration on one device vs MirroredStrategy over two logical CPUs.

Run as a script (the logical devices must be configured before TensorFlow starts). Prints a
JSON line with the largest absolute weight difference per network.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import ArraySource, make_arrays  # noqa: E402
from hvitgan_tf.models.config import preset  # noqa: E402
from hvitgan_tf.training.config import TrainConfig  # noqa: E402
from hvitgan_tf.training.data_stream import make_training_stream, training_examples  # noqa: E402
from hvitgan_tf.training.gan import HViTGAN  # noqa: E402


def run(strategy, source, model_config, train_config, initial_weights):
    with strategy.scope():
        model = HViTGAN(model_config, train_config, source.class_counts())
        model.compile()
        model.set_weights(initial_weights)
    stream = make_training_stream(
        strategy, training_examples(source, 16, train_config.seed),
        batch_size=train_config.batch_size, n_critic=train_config.n_critic)
    history = model.fit(stream, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    return model, logs


def main():
    policy = sys.argv[1] if len(sys.argv) > 1 else "color,translation,cutout,scale,rotation"
    source = ArraySource(*make_arrays())
    model_config = preset("tiny", 2)
    # clip_norm small enough that clipping is active: tests the cross-replica global norm.
    mode_seeking = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    train_config = TrainConfig(batch_size=4, n_critic=2, seed=5, diffaug=policy, clip_norm=0.5,
                               mode_seeking=mode_seeking)
    reference = HViTGAN(model_config, train_config, source.class_counts())
    initial = reference.get_weights()

    single, single_logs = run(tf.distribute.get_strategy(), source, model_config,
                              train_config, initial)
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored, mirrored_logs = run(mirrored_strategy, source, model_config, train_config,
                                  initial)

    def max_diff(a, b):
        return max(float(np.max(np.abs(x.numpy() - y.numpy())))
                   for x, y in zip(a.weights, b.weights))

    def max_change(net):
        return max(float(np.max(np.abs(w.numpy() - w0)))
                   for w, w0 in zip(net.weights, initial[:len(net.weights)]))

    print(json.dumps({
        "replicas": mirrored_strategy.num_replicas_in_sync,
        "generator": max_diff(single.generator, mirrored.generator),
        "discriminator": max_diff(single.discriminator, mirrored.discriminator),
        "ema_generator": max_diff(single.ema_generator, mirrored.ema_generator),
        "task_weights": max_diff(single.d_task_weights, mirrored.d_task_weights),
        "generator_change": max_change(single.generator),
        "logs_single": single_logs,
        "logs_mirrored": mirrored_logs,
    }))


if __name__ == "__main__":
    main()
