"""TFRecords of patches in the layout ``hvitgan-tf sample`` writes, for the pipeline tests."""
import os

import numpy as np

CLASSES = ("normal", "tumor")


def write_patch_records(path, per_class=10, size=16, gzip=False):
    """``per_class`` random patches of each class in ``CLASSES`` (class 1 brighter)."""
    import tensorflow as tf

    from hvitgan_tf import imaging
    from hvitgan_tf.data.tfrecord import serialize_example

    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(path, options) as writer:
        for label, name in enumerate(CLASSES):
            for _ in range(per_class):
                image = (rng.integers(0, 128, (size, size, 3)) + 100 * label).astype(np.uint8)
                writer.write(serialize_example(imaging.encode_png(image), label,
                                               confidence=0.9, class_name=name))
    return path
