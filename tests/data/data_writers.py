"""Writers for the tiny on-disk datasets the data tests read (PCam HDF5 files, class folders).

A plain module (not a conftest) so test files can import the helpers by name."""
import io
import os

import h5py
import numpy as np
from PIL import Image


def indexed_patches(count, size, seed=0):
    """uint8 [count, size, size, 3] random patches whose pixel [0, 0, 0] is the index (mod 256),
    so a test can tell which stored patch came out of a pipeline."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(count) % 256
    return images


def write_pcam_h5(directory, counts=None, size=96, label_rule=None, chunks=None):
    """PCam's layout: camelyonpatch_level_2_split_<split>_{x,y}.h5, x [N,S,S,3] uint8,
    y [N,1,1,1] uint8. Returns {split: (images, labels)}."""
    counts = counts or {"train": 40, "valid": 12, "test": 12}
    written = {}
    for offset, (split, count) in enumerate(counts.items()):
        images = indexed_patches(count, size, seed=offset)
        labels = (np.arange(count) % 3 == 0).astype(np.uint8) if label_rule is None \
            else label_rule(count).astype(np.uint8)
        with h5py.File(os.path.join(directory, f"camelyonpatch_level_2_split_{split}_x.h5"),
                       "w") as handle:
            handle.create_dataset("x", data=images, chunks=chunks)
        with h5py.File(os.path.join(directory, f"camelyonpatch_level_2_split_{split}_y.h5"),
                       "w") as handle:
            handle.create_dataset("y", data=labels.reshape(-1, 1, 1, 1))
        written[split] = (images, labels)
    return written


def encode(array, fmt, **kwargs):
    """An image array as encoded bytes (PNG, JPEG, TIFF) via Pillow."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_image(path, array, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def write_class_folder(root, per_class=6, size=16, classes=("benign", "malignant"), ext=".png"):
    """root/<class>/<i>.<ext> with random RGB patches; returns {path: array}."""
    written = {}
    rng = np.random.default_rng(1)
    for name in classes:
        for i in range(per_class):
            array = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            path = write_image(os.path.join(root, name, f"{i:03d}{ext}"), array)
            written[path] = array
    return written
