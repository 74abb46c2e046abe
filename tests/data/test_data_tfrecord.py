"""tfrecord:GLOB — tf.train.Example shards as `sample --format tfrecord` writes them."""
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

from data_writers import encode, indexed_patches
from hvitgan_tf.data import DataError, open_source
from hvitgan_tf.data.tfrecord import serialize_example


def _write_shard(path, records, compression=None):
    options = tf.io.TFRecordOptions(compression_type=compression) if compression else None
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)


def _plain_example(encoded, label, text=None):
    """A record built field by field, independent of ``serialize_example``."""
    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
               "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    if text is not None:
        feature["image/class/text"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[text.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _patches_and_labels(count=30, size=16):
    images = indexed_patches(count, size, seed=3)
    labels = np.arange(count) % 3
    return images, labels


def test_round_trip_of_what_the_sampler_writes(tmp_path):
    images, labels = _patches_and_labels()
    names = ["adipose", "stroma", "tumor"]
    records = [serialize_example(encode(image, "PNG"), int(label), confidence=0.9,
                                 class_name=names[label])
               for image, label in zip(images, labels)]
    _write_shard(tmp_path / "synthetic-00000-of-00002.tfrecord", records[:17])
    _write_shard(tmp_path / "synthetic-00001-of-00002.tfrecord", records[17:])
    source = open_source(f"tfrecord:{tmp_path}/*.tfrecord")
    assert source.class_names == names and source.native_image_size == 16
    assert sum(source.num_examples(s) for s in source.split_names) == 30
    assert source.class_counts("train") == [8, 8, 8]
    for split in source.split_names:
        positions = source.split_index(split).positions
        raw = list(source.raw_examples(split).as_numpy_iterator())
        assert len(raw) == len(positions)
        for position, (image, label) in zip(positions, raw):
            assert np.array_equal(image, images[position]) and label == labels[position]
    image, label = next(iter(source.examples("train", 8, shuffle=True, seed=0)))
    assert image.shape == (8, 8, 3) and image.dtype == tf.float32 and label.dtype == tf.int32
    # A directory means all its *.tfrecord* files.
    assert open_source(f"tfrecord:{tmp_path}").class_counts("test") == \
        source.class_counts("test")


@pytest.mark.parametrize("side_file, content", [
    ("classes.json", json.dumps(["normal", "tumor"])),
    ("classes.json", json.dumps({"class_names": ["normal", "tumor"]})),
    ("classes.txt", "normal\ntumor\n"),
])
def test_class_names_from_a_side_file(tmp_path, side_file, content):
    images, _ = _patches_and_labels(10)
    _write_shard(tmp_path / "data.tfrecord.gz",
                 [_plain_example(encode(image, "JPEG"), i % 2) for i, image in enumerate(images)],
                 compression="GZIP")
    (tmp_path / side_file).write_text(content)
    source = open_source(f"tfrecord:{tmp_path}/*")
    assert source.class_names == ["normal", "tumor"]
    assert sum(source.class_counts("train")) + source.num_examples("validation") + \
        source.num_examples("test") == 10


def test_generic_names_and_text_precedence(tmp_path):
    images, _ = _patches_and_labels(6)
    records = [_plain_example(encode(image, "PNG"), i % 2) for i, image in enumerate(images)]
    _write_shard(tmp_path / "a.tfrecord", records)
    assert open_source(f"tfrecord:{tmp_path}/a.tfrecord").class_names == ["class_0", "class_1"]
    records.append(_plain_example(encode(images[0], "PNG"), 1, text="tumor"))
    _write_shard(tmp_path / "a.tfrecord", records)
    (tmp_path / "classes.txt").write_text("normal\nlesion\n")
    assert open_source(f"tfrecord:{tmp_path}/a.tfrecord").class_names == ["normal", "tumor"]


def test_no_matching_files(tmp_path):
    with pytest.raises(DataError, match="no TFRecord files match"):
        open_source(f"tfrecord:{tmp_path}/*.tfrecord")
    (tmp_path / "classes.json").write_text("[]")
    with pytest.raises(DataError, match="no TFRecord files match"):
        open_source(f"tfrecord:{tmp_path}/*")


def test_label_outside_the_class_file(tmp_path):
    images, _ = _patches_and_labels(6)
    _write_shard(tmp_path / "a.tfrecord",
                 [_plain_example(encode(image, "PNG"), i % 3) for i, image in enumerate(images)])
    (tmp_path / "classes.json").write_text(json.dumps(["normal", "tumor"]))
    with pytest.raises(DataError, match="label 2 is outside the class range 0..1 given by "
                                        ".*classes.json"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")


def test_bad_records_and_shards(tmp_path, caplog):
    images, _ = _patches_and_labels(8)
    records = [_plain_example(encode(image, "PNG"), i % 2) for i, image in enumerate(images)]
    records[3] = _plain_example(encode(images[3], "PNG")[:-30], 1)  # truncated PNG
    _write_shard(tmp_path / "a.tfrecord", records)
    with pytest.raises(DataError, match=r"a\.tfrecord#3: corrupt or truncated image"):
        open_source(f"tfrecord:{tmp_path}/*.tfrecord")

    good = tmp_path / "b.tfrecord"
    _write_shard(good, records[:2])
    cut = good.read_bytes()
    (tmp_path / "c.tfrecord").write_bytes(cut[:-7])  # a shard cut off mid-record
    with pytest.raises(DataError, match=r"c\.tfrecord: truncated or not a TFRecord file"):
        open_source(f"tfrecord:{tmp_path}/[bc].tfrecord")

    with caplog.at_level(logging.WARNING, logger="hvitgan_tf.data"):
        source = open_source(f"tfrecord:{tmp_path}/*.tfrecord", skip_bad=True)
    assert [item.rsplit("/", 1)[-1] for item, _ in source.skipped] == ["a.tfrecord#3",
                                                                       "c.tfrecord"]
    assert "skipped 2 bad TFRecord" in caplog.text
    total = sum(source.num_examples(s) for s in source.split_names)
    assert total == 7 + 2
    seen = sum(1 for split in source.split_names for _ in source.examples(split, 16))
    assert seen == total


def test_record_without_label_and_inconsistent_names(tmp_path):
    png = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    no_label = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))}))
    _write_shard(tmp_path / "a.tfrecord", [_plain_example(png, 0), _plain_example(png, 1),
                                           no_label.SerializeToString()])
    with pytest.raises(DataError, match=r"a\.tfrecord#2: no image/class/label"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")
    _write_shard(tmp_path / "a.tfrecord", [_plain_example(png, 0, "normal"),
                                           _plain_example(png, 1, "tumor"),
                                           _plain_example(png, 1, "tumour")])
    with pytest.raises(DataError, match="label 1 is called 'tumor' in .* but 'tumour'"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")


def test_wrongly_typed_features_name_the_shard(tmp_path):
    png = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    float_label = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
        "image/class/label": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0]))}))
    _write_shard(tmp_path / "a.tfrecord", [float_label.SerializeToString()])
    with pytest.raises(DataError, match=r"a\.tfrecord: records do not hold the expected "
                                        r"features \(image/encoded bytes, image/class/label int64"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")


def test_one_class_only(tmp_path):
    png = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    _write_shard(tmp_path / "a.tfrecord", [_plain_example(png, 0)] * 3)
    with pytest.raises(DataError, match="at least 2"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")


def test_serialized_records_are_byte_identical_across_processes():
    # Protobuf map order varies with the process; "same seed, same files" needs fixed bytes.
    import subprocess
    import sys

    code = ("import hashlib; from hvitgan_tf.data.tfrecord import serialize_example; "
            "print(hashlib.sha1(serialize_example(b'png', 1, confidence=0.9, "
            "class_name='tumor')).hexdigest())")
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "PYTHONHASHSEED": str(seed),
                            "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(digests) == 1


def test_a_record_below_the_minimum_image_side_is_named(tmp_path):
    png = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    dot = encode(np.zeros((1, 1, 3), np.uint8), "PNG")
    _write_shard(tmp_path / "a.tfrecord", [_plain_example(png, 0), _plain_example(png, 1),
                                           _plain_example(dot, 1)])
    with pytest.raises(DataError, match=r"a\.tfrecord#2: too small: 1x1 px"):
        open_source(f"tfrecord:{tmp_path}/a.tfrecord")
