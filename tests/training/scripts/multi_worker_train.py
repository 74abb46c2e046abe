"""One worker of a MultiWorkerMirroredStrategy run (TF_CONFIG set by the caller), or, with
``--single``, the same training on one device. Prints a JSON line of weight checksums."""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

from hvitgan_tf.training.strategy import select_strategy  # noqa: E402

single = "--single" in sys.argv
# The strategy first: collective ops must be configured before any other TensorFlow work.
strategy = select_strategy("default" if single else "multi_worker")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import ArraySource, make_arrays  # noqa: E402
from hvitgan_tf.models.config import preset  # noqa: E402
from hvitgan_tf.training.config import TrainConfig  # noqa: E402
from hvitgan_tf.training.runner import train  # noqa: E402


class Fingerprint(keras.callbacks.Callback):
    batch_logs = []

    def on_train_batch_end(self, batch, logs=None):
        if os.environ.get("DEBUG_LOGS"):
            self.batch_logs.append({k: round(float(np.asarray(v)), 6) for k, v in logs.items()
                                    if k in ("d_real", "ce_real", "d_fake", "gp")})

    def on_train_end(self, logs=None):
        self.values = {
            name: float(sum(np.abs(w.numpy()).sum() for w in net.weights))
            for name, net in (("generator", self.model.generator),
                              ("discriminator", self.model.discriminator),
                              ("ema_generator", self.model.ema_generator))
        }
        self.values["iterations"] = int(self.model.iterations_done.numpy())
        self.values["batch_logs"] = self.batch_logs


run_dir = sys.argv[1]
source = ArraySource(*make_arrays())
config = TrainConfig(batch_size=4, n_critic=2, total_steps=3, seed=11, diffaug="color",
                     checkpoint_every=0, strategy="default" if single else "multi_worker")
fingerprint = Fingerprint()
train(run_dir, source, preset("tiny", 2), config, verbose=0, strategy=strategy,
      extra_callbacks=[fingerprint])
print(json.dumps(fingerprint.values))
