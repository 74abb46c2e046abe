"""Seed and id conventions of sampling (hvitgan_tf.sampling.seeds)."""
import numpy as np
import pytest

from hvitgan_tf.sampling.seeds import (_splitmix64, attempt_seed, attempt_seeds, parse_sample_id,
                                       sample_id)


def test_splitmix64_matches_the_reference_stream():
    # SplitMix64 seeded with 0: the first outputs of Vigna's reference implementation.
    state = np.uint64(0)
    outputs = []
    with np.errstate(over="ignore"):
        for _ in range(3):
            outputs.append(int(_splitmix64(state)))
            state = state + np.uint64(0x9E3779B97F4A7C15)
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_attempt_seeds_are_non_negative_distinct_and_pure():
    seeds = np.concatenate([attempt_seeds(0, label, np.arange(5000)) for label in range(3)])
    assert seeds.dtype == np.int64 and seeds.min() >= 0
    assert len(np.unique(seeds)) == len(seeds)
    # The vectorised form, the scalar form and a later slice agree: attempt k's seed does not
    # depend on which other attempts are drawn with it.
    assert attempt_seed(0, 2, 4321) == attempt_seeds(0, 2, [4321])[0] == \
        attempt_seeds(0, 2, np.arange(4000, 5000))[321]
    assert not np.array_equal(attempt_seeds(1, 0, np.arange(10)), attempt_seeds(0, 0, np.arange(10)))
    # Big and negative run seeds are fine (taken mod 2**64).
    assert attempt_seeds(-1, 0, [0])[0] >= 0 and attempt_seeds(2**70, 0, [0])[0] >= 0
    with pytest.raises(ValueError):
        attempt_seeds(0, 0, [-1])


def test_sample_ids_round_trip_even_with_dashes_in_class_names():
    assert sample_id("tumor", 42) == "tumor-000000042"
    assert parse_sample_id(sample_id("no-tumor", 7)) == ("no-tumor", 7)
    assert parse_sample_id("a-1234567890") == ("a", 1234567890)
    for bad in ("tumor", "tumor-12", "tumor-abcdefghi"):
        with pytest.raises(ValueError):
            parse_sample_id(bad)
