"""Best checkpoint by validation FID: the callback's bookkeeping with scripted scores, and a
real tiny training run through the CLI whose export picks the best checkpoint."""
import csv
import math
import os
import types

import numpy as np
import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli
from hvitgan_tf.data import open_source
from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import read_json
from hvitgan_tf.metrics.feature_extractors import FeatureExtractor
from hvitgan_tf.training import checkpoints
from hvitgan_tf.training.validation_fid import FID_FIRST_SEED, FIDSelection, ValidationFID


class MeanColourExtractor(FeatureExtractor):
    """A stand-in network (no weights): per-channel mean and std of an image."""

    name = "mean-colour"
    feature_dim = 6
    cache_id = "mean-colour:v1"

    def _extract(self, images):
        return np.concatenate([images.mean(axis=(1, 2)), images.std(axis=(1, 2))], axis=1)


class FakeGAN:
    """What the callback touches of HViTGAN: the EMA generator and save_weights."""

    ema_generator = None

    def save_weights(self, path):
        with open(path, "wb") as handle:
            handle.write(b"weights")


@pytest.fixture(scope="module")
def demo():
    return open_source("demo", limit=64, seed=0)


def make_callback(run_dir, demo, every=1, epochs=3, extractor=None):
    counter = types.SimpleNamespace(iteration=0)
    guard = types.SimpleNamespace(stopped=None)
    callback = ValidationFID(run_dir, demo, FIDSelection(every=every, num_samples=10),
                             image_size=16, latent_dim=16, class_counts=[30, 34],
                             counter=counter, guard=guard, steps_per_epoch=2,
                             extractor=extractor or MeanColourExtractor(), verbose=False)
    callback.set_model(FakeGAN())
    callback.set_params({"epochs": epochs})
    return callback, counter, guard


def scripted(callback, values):
    values = iter(values)
    callback.score = lambda generator: {"fid": next(values), "kid": 0.5, "kid_std": 0.1,
                                        "num_fake": 10}


def test_settings_are_validated_and_off_by_default():
    assert not FIDSelection().enabled
    assert FIDSelection.from_dict({"every": 2, "unknown": 1}).every == 2
    with pytest.raises(UserError, match="--fid-samples"):
        FIDSelection(every=1, num_samples=1)
    with pytest.raises(UserError, match="--fid-every"):
        FIDSelection(every=-1)


def test_latents_are_fixed_and_follow_the_training_prior(tmp_path, demo):
    callback, _, _ = make_callback(str(tmp_path), demo)
    # 10 samples for a 30:34 prior: 4.69 / 5.31 -> largest remainder gives 5 / 5.
    assert np.bincount(callback.labels).tolist() == [5, 5]
    np.testing.assert_array_equal(callback.seeds, FID_FIRST_SEED + np.arange(10))


def test_lowest_fid_is_marked_best_and_never_pruned(tmp_path, demo):
    run_dir = str(tmp_path)
    callback, counter, guard = make_callback(run_dir, demo, epochs=3)
    scripted(callback, [5.0, 3.0, 4.0])
    model = callback.model
    logs_per_epoch = []
    for epoch in range(3):
        for step in range(2):  # mid-epoch checkpoints, as --checkpoint-every 1 writes them
            counter.iteration += 1
            checkpoints.save(model, run_dir, counter.iteration, epoch=epoch)
        logs = {"d_loss": 1.0}
        callback.on_epoch_end(epoch, logs)
        logs_per_epoch.append(logs)
        best = checkpoints.read_record(run_dir, "best")
        assert best["val_fid"] == min([5.0, 3.0, 4.0][:epoch + 1])
    assert [logs["val_fid"] for logs in logs_per_epoch] == [5.0, 3.0, 4.0]
    assert all(logs["val_kid"] == 0.5 for logs in logs_per_epoch)
    best = checkpoints.read_record(run_dir, "best")
    assert best["iteration"] == 4 and best["weights"] == "iter-00000004.weights.h5"
    assert best["fid_features"] == "mean-colour:v1" and best["fid_samples"] == 10
    # Later checkpoints push iteration 4 out of the "recent" window; best.json keeps it.
    for iteration in range(7, 12):
        checkpoints.save(model, run_dir, iteration, epoch=3)
    files = sorted(os.listdir(checkpoints.folder(run_dir)))
    assert "iter-00000004.weights.h5" in files
    assert "iter-00000002.weights.h5" not in files  # the superseded best was pruned
    assert checkpoints.resolve(run_dir, "best").endswith("iter-00000004.weights.h5")
    assert callback.history[-1][:3] == (2, 6, 4.0)


def test_a_best_epoch_without_an_epoch_end_checkpoint_is_saved_by_the_callback(tmp_path, demo):
    run_dir = str(tmp_path)
    callback, counter, _ = make_callback(run_dir, demo)
    scripted(callback, [7.0])
    counter.iteration = 3  # nothing saved at iteration 3 yet
    callback.on_epoch_end(0, {})
    best = checkpoints.read_record(run_dir, "best")
    last = checkpoints.read_record(run_dir, "last")
    assert best["iteration"] == last["iteration"] == 3 and last["val_fid"] == 7.0
    assert os.path.isfile(best["path"])


def test_resume_keeps_the_previous_best_unless_the_features_changed(tmp_path, demo):
    run_dir = str(tmp_path)
    first, counter, _ = make_callback(run_dir, demo)
    scripted(first, [3.0])
    counter.iteration = 2
    first.on_epoch_end(0, {})

    resumed, counter, _ = make_callback(run_dir, demo)
    assert resumed.best_fid == 3.0
    scripted(resumed, [3.5, 2.5])
    counter.iteration = 4
    resumed.on_epoch_end(1, {})
    assert checkpoints.read_record(run_dir, "best")["iteration"] == 2  # 3.5 is worse
    counter.iteration = 6
    resumed.on_epoch_end(2, {})
    assert checkpoints.read_record(run_dir, "best")["iteration"] == 6

    other = MeanColourExtractor()
    other.cache_id = "mean-colour:v2"
    changed, _, _ = make_callback(run_dir, demo, extractor=other)
    assert math.isinf(changed.best_fid)  # FIDs of different features are not comparable


def test_schedule_first_every_nth_and_last_epoch_and_never_after_divergence(tmp_path, demo):
    callback, counter, guard = make_callback(str(tmp_path), demo, every=3, epochs=10)
    scripted(callback, [float(v) for v in range(10, 0, -1)])
    evaluated = []
    for epoch in range(10):
        counter.iteration = 2 * (epoch + 1)
        logs = {}
        callback.on_epoch_end(epoch, logs)
        if "val_fid" in logs:
            evaluated.append(epoch + 1)
    assert evaluated == [1, 3, 6, 9, 10]
    guard.stopped = (22, "d_loss", float("nan"))
    logs = {}
    callback.on_epoch_end(10, logs)
    assert "val_fid" not in logs


@pytest.mark.slow
def test_train_cli_selects_by_fid_and_the_export_uses_best(tmp_path, tiny_saved_model):
    _, gan_export = tiny_saved_model
    run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
    result = CliRunner().invoke(cli, [
        "train", "--preset", "tiny", "--limit", "64", "--steps", "4", "--steps-per-epoch", "1",
        "--batch-size", "4", "--n-critic", "1", "--diffaug", "color",
        "--checkpoint-every", "1", "--fid-every", "2",
        "--fid-features", f"classifier:{gan_export}", "--fid-samples", "24",
        "--out", str(run_dir), "--export-dir", str(export_dir)])
    assert result.exit_code == 0, result.output
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Epochs 1 (first), 2 (every 2nd) and 4 (last) are scored, epoch 3 is not.
    assert [row["val_fid"] == "NA" for row in rows] == [False, False, True, False]
    fids = [float(row["val_fid"]) for row in rows if row["val_fid"] != "NA"]
    assert len(fids) == 3 and all(np.isfinite(fids)) and min(fids) >= 0
    best = checkpoints.read_record(str(run_dir), "best")
    assert best["val_fid"] == pytest.approx(min(fids))
    assert best["epoch"] == [1, 2, 4][int(np.argmin(fids))]
    assert os.path.isfile(best["path"])
    assert "best (FID)" in result.output
    assert read_json(str(run_dir / "run.json"))["fid_selection"]["every"] == 2
    assert os.listdir(run_dir / "logs" / "validation")  # TensorBoard's val_ run
    # `train` exported at the end with the default checkpoint="best".
    from hvitgan_tf.export import read_export_metadata

    exported = read_export_metadata(str(export_dir / "hvitgan"))
    assert exported["checkpoint"]["iteration"] == best["iteration"]
    assert exported["checkpoint"]["which"] == "best"


def test_switching_fid_on_at_resume_keeps_the_old_metrics_apart(tmp_path, demo):
    callback, _, _ = make_callback(str(tmp_path), demo)
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,d_loss,val_d_loss\n0,1.0,NA\n")
    callback.on_train_begin()
    # CSVLogger cannot add columns to an existing header: the old rows move aside.
    assert not metrics.exists()
    assert (tmp_path / "metrics-before-fid.csv").read_text().startswith("epoch,d_loss,")
    metrics.write_text("epoch,d_loss,val_fid,val_kid\n0,1.0,3.0,0.1\n")
    callback.on_train_begin()  # a run that had FID all along is left alone
    assert metrics.read_text().startswith("epoch,d_loss,val_fid")
