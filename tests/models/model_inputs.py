"""Deterministic inputs for the network tests (imported by the test modules)."""
import numpy as np


def noise_and_labels(config, batch, seed=0):
    """Float32 ``z`` and int32 labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, config.latent_dim)).astype("float32")
    labels = (np.arange(batch) % config.num_classes).astype("int32")
    return z, labels


def random_images(config, batch, seed=0):
    rng = np.random.default_rng(seed)
    size = config.image_size
    return rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
