"""``hvitgan-tf export`` and the workflow it starts: export -> sample --threshold 0.8.

The tiny run's class head is barely trained (every confidence is near 0.5), so this test exports
a *sharpened* copy of its weights: the class head's logits are centred on the generated images
and scaled so that their spread is large. That is a test fixture, not product code; it gives a
model for which ``--threshold 0.8`` keeps some images and rejects others, like a trained one.
"""
import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow


def sharpened_weights(run_dir, path):
    import tensorflow as tf

    from hvitgan_tf import imaging
    from hvitgan_tf.noise import truncated_noise
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.gan import HViTGAN
    from hvitgan_tf.training.runner import load_run

    model_config, train_config, data = load_run(run_dir)
    gan = HViTGAN(model_config, train_config, data["class_counts"])
    gan.compile()
    gan.load_weights(checkpoints.resolve(run_dir, "last"))
    labels = tf.constant(np.arange(128) % 2, tf.int32)
    z = truncated_noise(tf.range(128, dtype=tf.int64), model_config.latent_dim, 1.0)
    images = imaging.to_float(imaging.to_uint8(gan.ema_generator([z, labels])))
    _, logits = gan.discriminator(images)
    logits = logits.numpy()
    centre = logits.mean(axis=0)
    scale = 6.0 / (logits[:, 0] - logits[:, 1]).std()
    head = gan.discriminator.class_head
    head.kernel.assign(head.kernel.numpy() * scale)
    head.bias.assign((head.bias.numpy() - centre) * scale)
    gan.save_weights(path)
    return path


@pytest.fixture(scope="module")
def exported(tiny_run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("export-cmd")
    weights = sharpened_weights(tiny_run_dir, str(root / "sharp.weights.h5"))
    export_dir = str(root / "models")
    result = CliRunner().invoke(cli, ["export", tiny_run_dir, "--checkpoint", weights,
                                      "--export-dir", export_dir, "--name", "sharp"])
    return result, export_dir


def test_export_writes_version_1_and_says_how_to_serve_it(exported):
    result, export_dir = exported
    assert result.exit_code == 0, result.output
    base = os.path.join(os.path.abspath(export_dir), "sharp")
    assert os.path.isfile(os.path.join(base, "1", "saved_model.pb"))
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("exported sharp v1 (tiny, 16 px, 2 classes")
    assert f"saved model:  {base}/1" in lines
    assert (f"serve:        docker run -p 8501:8501 -p 8500:8500 -v {base}:/models/sharp "
            "-e MODEL_NAME=sharp tensorflow/serving") in lines
    assert lines[-1] == (f"sample:       hvitgan-tf sample --model {base} --threshold 0.8 "
                         "--per-class 100 --out synthetic")
    assert any('"signature_name": "generate"' in line and "/v1/models/sharp:predict" in line
               for line in lines)


def test_export_mistakes_exit_2_with_one_line(exported, tiny_run_dir, tmp_path):
    _, export_dir = exported
    runner = CliRunner()
    cases = [
        (["export", tiny_run_dir, "--export-dir", export_dir, "--name", "sharp", "--version",
          "1"], "exported versions are never overwritten"),
        (["export", str(tmp_path)], "is not an hvitgan-tf run folder"),
        (["export", tiny_run_dir, "--checkpoint", "nope.weights.h5", "--export-dir",
          str(tmp_path)], "is not 'last', 'best' or an existing file"),
        (["export", tiny_run_dir, "--name", "a/b", "--export-dir", str(tmp_path)],
         "model name 'a/b'"),
        (["export", tiny_run_dir, "--version", "0"], "Invalid value for '--version'"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert sorted(os.listdir(os.path.join(export_dir, "sharp"))) == ["1"]


def test_the_exported_model_samples_at_threshold_0_8(exported, tmp_path):
    from hvitgan_tf.sampling import ExportedModel

    _, export_dir = exported
    model_dir = os.path.join(export_dir, "sharp")
    out = str(tmp_path / "synthetic")
    result = CliRunner().invoke(cli, ["sample", "--model", model_dir, "--threshold", "0.8",
                                      "--per-class", "4", "--out", out, "--format", "both",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    with open(os.path.join(out, "manifest.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["class"] for row in rows) == ["dab_negative"] * 4 + ["dab_positive"] * 4
    model = ExportedModel(model_dir)
    images = np.stack([np.asarray(Image.open(os.path.join(out, row["file"]))) for row in rows])
    probabilities = model.classify(images)["probabilities"]
    for row, p in zip(rows, probabilities):
        assert float(row["confidence"]) >= 0.8
        assert abs(p[int(row["label"])] - float(row["confidence"])) <= 1e-6
    # Selection happened: more attempts than kept images.
    table = result.output[result.output.index("class "):]
    total = [line for line in table.splitlines() if line.startswith("total")][0].split()
    assert int(total[3]) == 8 and int(total[4]) > 8
