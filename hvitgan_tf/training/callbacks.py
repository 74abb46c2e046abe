"""Side effects of training, kept out of ``train_step``: checkpoints, divergence guard,
per-class sample grids, a compact progress bar, and the iteration budget."""
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf import imaging
from hvitgan_tf.noise import truncated_noise
from hvitgan_tf.training import checkpoints

PROGRESS_KEYS = ("d_loss", "g_loss", "gp", "d_real", "d_fake", "acc_real", "acc_fake")


def _scalar(value):
    return float(np.asarray(keras.ops.convert_to_numpy(value)))


class IterationCounter(keras.callbacks.Callback):
    """Tracks the global iteration (across resumes) for the other callbacks."""

    def __init__(self, start_iteration):
        super().__init__()
        self.iteration = start_iteration

    def on_train_batch_end(self, batch, logs=None):
        self.iteration += 1


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and keeps the last good checkpoint.

    Must come before ``CheckpointSaver`` in the callback list so the broken weights are never
    saved; the runner reports ``stopped`` after ``fit`` returns.
    """

    def __init__(self, counter, keys=("d_loss", "g_loss")):
        super().__init__()
        self.counter = counter
        self.keys = keys
        self.stopped = None  # (iteration, name, value) once triggered

    def on_train_batch_end(self, batch, logs=None):
        for key in self.keys:
            if logs and key in logs:
                value = _scalar(logs[key])
                if not math.isfinite(value):
                    self.stopped = (self.counter.iteration, key, value)
                    self.model.stop_training = True
                    return


class CheckpointSaver(keras.callbacks.Callback):
    """Saves the whole training state every ``every`` iterations and at every epoch end.

    The state is G, D, the EMA generator, both optimisers (with their iteration counters) and
    the learned loss weights: everything ``HViTGAN.save_weights`` holds.
    """

    def __init__(self, run_dir, counter, guard, every=0, steps_per_epoch=1):
        super().__init__()
        self.run_dir = run_dir
        self.counter = counter
        self.guard = guard
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.last_saved = None

    def _save(self):
        if self.guard.stopped or self.counter.iteration == self.last_saved:
            return
        checkpoints.save(self.model, self.run_dir, self.counter.iteration,
                         epoch=self.counter.iteration // self.steps_per_epoch)
        self.last_saved = self.counter.iteration

    def on_train_batch_end(self, batch, logs=None):
        if self.every and self.counter.iteration % self.every == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()


class StopAtIteration(keras.callbacks.Callback):
    """Ends training after a total number of iterations (``--steps``), even mid-epoch."""

    def __init__(self, counter, total):
        super().__init__()
        self.counter = counter
        self.total = total

    def on_train_batch_end(self, batch, logs=None):
        if self.counter.iteration >= self.total:
            self.model.stop_training = True


def class_rows_grid(images, class_names, per_class, title=None):
    """A labelled uint8 grid of ``images`` (``[-1, 1]``, ``per_class`` per class in label
    order): one row per class."""
    images = imaging.to_uint8(images)
    rows = [(name, images[i * per_class:(i + 1) * per_class])
            for i, name in enumerate(class_names)]
    return imaging.labelled_grid(rows, title=title)


class SampleGrid(keras.callbacks.Callback):
    """Per-class samples of the EMA generator from fixed noise, every epoch.

    Fixed noise (seeds 0..n-1, ψ = 1) makes the grids comparable across epochs: the same cell
    shows the same latent as training moves it from noise towards tissue. Written as
    ``samples/epoch_NNNN.png`` and as a TensorBoard image.
    """

    def __init__(self, run_dir, class_names, per_class, latent_dim, guard, log_dir=None):
        super().__init__()
        self.guard = guard
        self.folder = os.path.join(run_dir, "samples")
        self.class_names = list(class_names)
        self.per_class = per_class
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "samples")) \
            if log_dir else None
        k = len(self.class_names)
        self.labels = tf.repeat(tf.range(k, dtype=tf.int32), per_class)
        seeds = tf.tile(tf.range(per_class, dtype=tf.int64), [k])
        self.noise = truncated_noise(seeds, latent_dim, 1.0)

    def render(self, generator):
        images = generator([self.noise, self.labels], training=False)
        return class_rows_grid(images, self.class_names, self.per_class)

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.stopped:
            return  # the weights hold NaN/Inf: nothing worth drawing
        grid = self.render(self.model.ema_generator)
        path = os.path.join(self.folder, f"epoch_{epoch + 1:04d}.png")
        imaging.save_png(path, grid)
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("ema_samples_per_class", grid[np.newaxis], step=epoch + 1)
            self.writer.flush()


class CompactProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar showing only the headline losses (all of them go to CSV and
    TensorBoard); sixteen metrics on one line would wrap into noise."""

    def __init__(self, keys=PROGRESS_KEYS, first_epoch=0):
        super().__init__()
        self.keys = keys
        self.started = time.time()

    def _filter(self, logs):
        return {k: v for k, v in (logs or {}).items() if k in self.keys}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self._filter(logs))

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._filter(logs))
