"""Side effects of training, kept out of ``train_step``: checkpoints, divergence guard,
per-class sample grids, a compact progress bar, and the iteration budget."""
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf import imaging
from hvitgan_tf.fileio import naming_disk_full
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


class _NamesItsFiles:
    """For a Keras callback that writes files itself, appending to them in place (not through
    ``fileio``'s atomic writers): a full disk in any of its hooks is raised as ``NoSpaceLeft``
    naming ``self.written``, what it writes."""

    written = None

    def on_train_begin(self, logs=None):
        with naming_disk_full(self.written):
            super().on_train_begin(logs)

    def on_train_batch_end(self, batch, logs=None):
        with naming_disk_full(self.written):
            super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        with naming_disk_full(self.written):
            super().on_epoch_end(epoch, logs)

    def on_test_end(self, logs=None):
        with naming_disk_full(self.written):
            super().on_test_end(logs)

    def on_train_end(self, logs=None):
        with naming_disk_full(self.written):
            super().on_train_end(logs)


class MetricsCSV(_NamesItsFiles, keras.callbacks.CSVLogger):
    """Keras's CSV logger (one row per epoch), naming ``metrics.csv`` when the disk is full. A
    resumed run first drops a row that a full disk or a kill cut short: the next row would
    otherwise continue it on the same line."""

    def __init__(self, filename, append=False):
        super().__init__(filename, append=append)
        self.written = filename

    def on_train_begin(self, logs=None):
        if self.append:
            drop_torn_last_line(self.filename)
        super().on_train_begin(logs)


def drop_torn_last_line(path):
    """Cut a text file back to its last complete line (a missing file is left missing)."""
    try:
        with open(path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class TensorBoardLogs(_NamesItsFiles, keras.callbacks.TensorBoard):
    """Keras's TensorBoard logger, naming its log folder when the disk is full."""

    def __init__(self, log_dir, **options):
        super().__init__(log_dir, **options)
        self.written = log_dir


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
        self.log_dir = os.path.join(log_dir, "samples") if log_dir else None
        self.writer = None
        if log_dir:
            with naming_disk_full(self.log_dir):
                self.writer = tf.summary.create_file_writer(self.log_dir)
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
            with naming_disk_full(self.log_dir), self.writer.as_default():
                tf.summary.image("ema_samples_per_class", grid[np.newaxis], step=epoch + 1)
                self.writer.flush()


class CompactProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar showing only the headline losses (all of them go to CSV and
    TensorBoard); sixteen metrics on one line would wrap into noise."""

    def __init__(self, keys=PROGRESS_KEYS, first_epoch=0):
        super().__init__()
        self.keys = keys
        self.started = time.time()

    mid_line = False  # whether the bar's line is unfinished (an epoch under way)

    def _filter(self, logs):
        return {k: v for k, v in (logs or {}).items() if k in self.keys}

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, self._filter(logs))
        self.mid_line = True

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, self._filter(logs))
        self.mid_line = False

    def end_line(self):
        """Finish the bar's line when training stops mid-epoch (an error, Ctrl-C), so that the
        message which follows starts a line of its own."""
        if self.mid_line:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.mid_line = False
