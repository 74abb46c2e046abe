"""`hvitgan-tf evaluate`: FID/KID of an exported GAN and of a sample folder against a demo
split (offline, with the GAN's own `features` signature), and classification metrics of its
`classify` signature, each checked against an independent computation."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from hvitgan_tf import imaging
from hvitgan_tf.cli.main import cli
from hvitgan_tf.data import open_source
from hvitgan_tf.metrics.distances import frechet_distance
from hvitgan_tf.metrics.generation_plan import generation_plan

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def demo():
    return open_source("demo")


def invoke(runner, args):
    result = runner.invoke(cli, ["evaluate", *args])
    assert result.exit_code == 0, result.output
    return result


def gaussian(features):
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def test_fid_of_a_saved_model_against_the_test_split(runner, demo, tiny_saved_model, tmp_path):
    base, version = tiny_saved_model
    out = tmp_path / "results.json"
    args = ["--model", base, "--split", "test", "--features", f"classifier:{version}",
            "--num-samples", "40", "--seed", "3", "--no-classification",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    result = invoke(runner, args)
    fid = json.loads(out.read_text())["fid"]
    assert "FID" in result.output and "KID" in result.output and str(out) in result.output
    assert fid["num_generated"] == 40 and fid["num_real"] == 90 and fid["image_size"] == 16
    # 40 labels in the test split's 43:47 proportion.
    assert fid["class_counts_generated"] == {"dab_negative": 19, "dab_positive": 21}

    # Independently: the same 40 latents through `generate`, features through `features`.
    loaded = tf.saved_model.load(version)
    labels, seeds = generation_plan(demo.class_counts("test"), 40, first_seed=3)
    images = loaded.signatures["generate"](
        label=tf.constant(labels), seed=tf.constant(seeds),
        truncation=tf.ones([40], tf.float32))["images"]
    features = loaded.signatures["features"]
    fake = features(images=images)["features"].numpy()
    real_images = np.concatenate([imaging.to_uint8(x.numpy())
                                  for x, _ in demo.batches("test", 16, 64)])
    real = features(images=tf.constant(real_images))["features"].numpy()
    expected = frechet_distance(*gaussian(real), *gaussian(fake))
    assert fid["fid"] == pytest.approx(expected, rel=1e-4, abs=1e-6)

    # The real statistics were cached; a second call reuses them and gives the same numbers.
    assert len(os.listdir(tmp_path / "cache")) == 1
    invoke(runner, args)
    assert json.loads(out.read_text())["fid"]["fid"] == pytest.approx(fid["fid"], rel=1e-9)


def test_a_folder_of_the_test_images_themselves_has_fid_zero(runner, demo, tiny_saved_model,
                                                             tmp_path):
    _, version = tiny_saved_model
    folder = tmp_path / "samples"
    for index, (image, label) in enumerate(demo.raw_examples("test")):
        path = folder / demo.class_names[int(label)] / f"{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        imaging.save_png(str(path), image.numpy())
    out = tmp_path / "folder.json"
    invoke(runner, ["--samples", str(folder), "--features", f"classifier:{version}",
                    "--no-cache", "--out", str(out)])
    fid = json.loads(out.read_text())["fid"]
    assert fid["num_generated"] == 90 and fid["image_size"] == 48  # the images' own size
    assert fid["fid"] == pytest.approx(0.0, abs=1e-6)
    # The unbiased KID of a set against itself is (2/n²)(mean off-diagonal kernel - mean
    # diagonal kernel): slightly negative, not 0 (its expectation is 0 for independent sets).
    assert -0.1 < fid["kid"] <= 0.0


def test_classification_metrics_of_the_classify_signature(runner, demo, tiny_saved_model,
                                                          tmp_path):
    base, version = tiny_saved_model
    out = tmp_path / "cls.json"
    result = invoke(runner, ["--model", base, "--no-fid", "--split", "test", "--out", str(out)])
    report = json.loads(out.read_text())["classification"]
    assert "confusion matrix" in result.output and "sensitivity" in result.output
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == 90 and matrix.sum(axis=1).tolist() == demo.class_counts("test")
    assert report["positive_class"] == "dab_positive"

    classify = tf.saved_model.load(version).signatures["classify"]
    labels, predicted = [], []
    for images, batch_labels in demo.batches("test", 16, 64):
        out_batch = classify(images=tf.constant(imaging.to_uint8(images.numpy())))
        predicted.append(out_batch["probabilities"].numpy()[:, 1] >= 0.5)
        labels.append(batch_labels.numpy())
    labels, predicted = np.concatenate(labels), np.concatenate(predicted)
    metrics = report["metrics"]
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["sensitivity"] == pytest.approx(np.mean(predicted[labels == 1]))
    assert metrics["specificity"] == pytest.approx(np.mean(~predicted[labels == 0]))
    assert 0.0 <= metrics["auc"] <= 1.0


def test_missing_inception_weights_point_to_the_offline_extractor(runner, tiny_saved_model,
                                                                 tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    base, _ = tiny_saved_model
    result = runner.invoke(cli, ["evaluate", "--model", base, "--no-classification"])
    assert result.exit_code == 2
    assert "InceptionV3" in result.output and "--features classifier:" in result.output


def test_usage_errors(runner, tiny_saved_model):
    result = runner.invoke(cli, ["evaluate"])
    assert result.exit_code == 2 and "--model" in result.output
    base, _ = tiny_saved_model
    result = runner.invoke(cli, ["evaluate", "--model", base, "--no-fid",
                                 "--no-classification"])
    assert result.exit_code == 2 and "nothing to evaluate" in result.output
