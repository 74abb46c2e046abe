"""Fixtures for training tests: an in-memory data source and tiny configs."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models.config import preset
from hvitgan_tf.training.config import TrainConfig


class ArraySource:
    """The part of the ``hvitgan_tf.data`` source interface that training uses, over arrays."""

    def __init__(self, images, labels, class_names=("a", "b"), spec="arrays"):
        self.images = np.asarray(images, np.float32)
        self.labels = np.asarray(labels, np.int32)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.spec = spec

    def num_examples(self, split="train"):
        return len(self.labels)

    def class_counts(self, split="train"):
        return np.bincount(self.labels, minlength=self.num_classes).tolist()

    def examples(self, split, image_size, shuffle=False, seed=0, repeat=False):
        images = tf.image.resize(self.images, [image_size, image_size])
        dataset = tf.data.Dataset.from_tensor_slices((images, self.labels))
        if not repeat:
            return dataset.shuffle(len(self.labels), seed=seed) if shuffle else dataset
        if not shuffle:
            return dataset.repeat()
        # Same contract as hvitgan_tf.data: pass e is the stateless permutation of (seed, e).
        count = len(self.labels)

        def one_pass(epoch):
            order = tf.random.experimental.index_shuffle(
                tf.range(count, dtype=tf.int64), tf.stack([tf.constant(seed, tf.int64), epoch]),
                max_index=count - 1)
            return tf.data.Dataset.from_tensor_slices(
                (tf.gather(images, order), tf.gather(self.labels, order)))

        return tf.data.Dataset.range(1 << 40).flat_map(one_pass)


def make_arrays(n=32, size=16, seed=0):
    """Two visually different classes: dark-ish and bright-ish noisy squares in [-1, 1]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 1, 0.5, -0.5)
    images = np.clip(base + 0.3 * rng.standard_normal((n, size, size, 3)), -1, 1)
    return images.astype(np.float32), labels.astype(np.int32)


@pytest.fixture
def array_source():
    return ArraySource(*make_arrays())


@pytest.fixture
def tiny_model_config():
    return preset("tiny", num_classes=2)


@pytest.fixture
def tiny_train_config():
    # 32 examples / (4 * 2) = 4 iterations per epoch.
    # The paper's loss (plain class sums, CE on fakes in D, the source head alone as critic, no
    # mode seeking): tests of the departures set them.
    return TrainConfig(batch_size=4, n_critic=2, epochs=1, seed=3, checkpoint_every=0,
                       samples_per_class=2, class_gradient_share=0.0, d_class_on_fakes=True,
                       critic_projection=False, mode_seeking=0.0)


@pytest.fixture
def gan_on_one_batch(tiny_model_config):
    """``build(train_config, seed, batch=6) -> (model, real, labels, fake, draws)``: a compiled
    tiny two-class GAN, a batch of random "real" images with alternating labels, and the
    fakes of the first critic step's draws, for tests that compare loss terms directly."""
    from hvitgan_tf.training.gan import HViTGAN

    def build(train_config, seed, batch=6):
        # The initial weights too come from the seed, not from whichever tests ran before in
        # this process.
        keras.utils.set_random_seed(seed)
        model = HViTGAN(tiny_model_config, train_config, [16, 16])
        model.compile()
        rng = np.random.default_rng(seed)
        real = tf.constant(rng.uniform(-1, 1, (batch, 16, 16, 3)).astype(np.float32))
        labels = tf.constant(np.arange(batch) % 2, tf.int32)
        draws = model._draw(model.iterations_done, 0, batch, 0, batch)
        fake = model.generator([draws["z"], draws["fake_labels"]], training=True)
        return model, real, labels, fake, draws

    return build
