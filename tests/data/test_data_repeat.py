"""The endless training stream (``repeat=True``): pass e's order depends only on (seed, e)."""
import numpy as np
import pytest

from hvitgan_tf.data import open_source


def _labels_and_means(dataset, count):
    rows = list(dataset.take(count).as_numpy_iterator())
    return [(int(label), round(float(image.mean()), 5)) for image, label in rows]


@pytest.mark.parametrize("spec_kind", ["demo", "pcam-h5"])
def test_repeated_stream_is_the_same_for_every_iterator_and_reshuffles_each_pass(
        spec_kind, pcam_dir):
    spec = "demo" if spec_kind == "demo" else f"pcam-h5:{pcam_dir[0]}"
    source = open_source(spec, limit=20, seed=1)
    n = source.num_examples("train")
    stream = source.examples("train", 16, shuffle=True, seed=4, repeat=True)

    first = _labels_and_means(stream, 3 * n)
    again = _labels_and_means(stream, 3 * n)  # a second iterator on the same dataset
    assert first == again

    passes = [first[i * n:(i + 1) * n] for i in range(3)]
    assert all(sorted(p) == sorted(passes[0]) for p in passes)  # each pass is a permutation
    # ... in a new order every time (a chained != would never compare pass 0 with pass 2)
    assert passes[0] != passes[1] and passes[1] != passes[2] and passes[0] != passes[2]

    other_seed = _labels_and_means(
        source.examples("train", 16, shuffle=True, seed=5, repeat=True), n)
    assert other_seed != passes[0]


def test_repeated_stream_skips_to_the_same_position(pcam_dir):
    source = open_source("demo", limit=16, seed=0)
    stream = source.examples("train", 16, shuffle=True, seed=2, repeat=True)
    whole = _labels_and_means(stream, 40)
    assert _labels_and_means(stream.skip(25), 15) == whole[25:]


def test_unshuffled_repeat_cycles_in_stored_order():
    source = open_source("demo", limit=10, seed=0)
    once = _labels_and_means(source.examples("train", 16), 10)
    assert _labels_and_means(source.examples("train", 16, repeat=True), 30) == once * 3
