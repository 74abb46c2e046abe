"""Run folders: resume (exact), divergence handling, and what a run leaves behind."""
import json
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from conftest import ArraySource, make_arrays
from hvitgan_tf.errors import UserError
from hvitgan_tf.training import checkpoints
from hvitgan_tf.training.runner import TrainingDiverged, _segments, load_run, train


def _weights(path):
    """Every array in a Keras .weights.h5 file, by its path inside the file."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _assert_same_state(path_a, path_b):
    a, b = _weights(path_a), _weights(path_b)
    assert a.keys() == b.keys()
    for name in a:
        if "metrics" in name or "tracker" in name:
            continue  # running means restart at zero after a resume, by design
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture
def config(tiny_train_config):
    # 32 examples, batch 4, n_critic 2 -> 4 iterations per epoch.
    return tiny_train_config.replace(diffaug="color,translation", checkpoint_every=0)


def test_segments_finish_a_partial_epoch_first():
    assert _segments(0, 8, 4) == [(0, 0, 4)]
    assert _segments(5, 8, 4) == [(5, 1, 3)]
    assert _segments(5, 12, 4) == [(5, 1, 3), (8, 2, 4)]
    assert _segments(4, 12, 4) == [(4, 1, 4)]


def test_run_resumed_mid_epoch_ends_with_exactly_the_uninterrupted_state(
        tmp_path, array_source, tiny_model_config, config):
    full = train(str(tmp_path / "full"), array_source, tiny_model_config,
                 config.replace(epochs=2), verbose=0)
    assert full.iterations == 8

    part = str(tmp_path / "part")
    first = train(part, array_source, tiny_model_config, config.replace(total_steps=5),
                  verbose=0)
    assert first.iterations == 5 and checkpoints.read_record(part)["iteration"] == 5
    resumed = train(part, array_source, tiny_model_config, config.replace(epochs=2),
                    resume=True, verbose=0)
    assert resumed.iterations == 8
    _assert_same_state(full.checkpoint, resumed.checkpoint)

    # What a run folder holds.
    assert json.load(open(os.path.join(part, "run.json")))["model"]["preset"] == "tiny"
    samples = sorted(os.listdir(os.path.join(part, "samples")))
    assert samples == ["epoch_0001.png", "epoch_0002.png"]
    with open(os.path.join(part, "metrics.csv")) as handle:
        header = handle.readline().strip().split(",")
    assert {"epoch", "d_loss", "g_loss", "gp", "s_ce_real"} <= set(header)
    assert os.listdir(os.path.join(part, "logs"))


def test_resume_at_an_epoch_boundary_matches_too(tmp_path, array_source, tiny_model_config,
                                                 config):
    config = config.replace(diffaug="none")
    full = train(str(tmp_path / "full"), array_source, tiny_model_config,
                 config.replace(epochs=2), verbose=0)
    part = str(tmp_path / "part")
    train(part, array_source, tiny_model_config, config.replace(epochs=1), verbose=0)
    resumed = train(part, array_source, tiny_model_config, config.replace(epochs=2),
                    resume=True, verbose=0)
    _assert_same_state(full.checkpoint, resumed.checkpoint)


def test_resume_refuses_another_model_or_data_stream(tmp_path, array_source,
                                                     tiny_model_config, config):
    run = str(tmp_path / "run")
    train(run, array_source, tiny_model_config, config.replace(total_steps=1, diffaug="none"),
          verbose=0)
    with pytest.raises(UserError, match="model config differs.*class_projection"):
        train(run, array_source, tiny_model_config.replace(class_projection=False),
              config.replace(diffaug="none"), resume=True, verbose=0)
    with pytest.raises(UserError, match="data stream would change.*batch_size"):
        train(run, array_source, tiny_model_config,
              config.replace(diffaug="none", batch_size=8), resume=True, verbose=0)
    with pytest.raises(UserError, match="already holds a training run"):
        train(run, array_source, tiny_model_config, config.replace(diffaug="none"),
              verbose=0)
    with pytest.raises(UserError, match="not an hvitgan-tf run folder"):
        train(str(tmp_path / "empty"), array_source, tiny_model_config, config, resume=True,
              verbose=0)


class PoisonedSource(ArraySource):
    """Clean images for the first ``clean`` stream elements, then NaN images."""

    def __init__(self, clean, **kwargs):
        super().__init__(*make_arrays(), **kwargs)
        self.clean = clean

    def examples(self, split, image_size, shuffle=False, seed=0, repeat=False):
        good = super().examples(split, image_size, shuffle, seed, repeat)
        bad = good.map(lambda image, label: (image * np.float32("nan"), label))
        return good.take(self.clean).concatenate(bad)


def test_nan_in_the_data_stops_training_and_keeps_the_last_good_checkpoint(
        tmp_path, tiny_model_config, config):
    run = str(tmp_path / "run")
    # 8 examples per iteration: iterations 1-3 are clean, the 4th sees NaN images.
    source = PoisonedSource(clean=24)
    with pytest.raises(TrainingDiverged, match=r"iteration 4: d_loss became nan.*iteration 3"):
        train(run, source, tiny_model_config,
              config.replace(diffaug="none", checkpoint_every=1, epochs=3), verbose=0)
    record = checkpoints.read_record(run)
    assert record["iteration"] == 3
    state = _weights(record["path"])
    assert all(np.all(np.isfinite(v)) for v in state.values() if v.dtype.kind == "f")


def test_a_worker_that_cannot_see_the_run_folder_is_told_to_share_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["host-a:2222", "host-b:2222"]},
        "task": {"type": "worker", "index": 1}}))
    with pytest.raises(UserError, match="every worker must see the same run folder"):
        load_run(str(tmp_path / "missing"))
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(UserError) as error:
        load_run(str(tmp_path / "missing"))
    assert "every worker" not in str(error.value)
