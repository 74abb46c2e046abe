"""The exported SavedModel (docs/method.md §7): layout, metadata, signatures, determinism, input
checks."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.export import read_export_metadata, resolve_model_dir
from hvitgan_tf.export.savedmodel import _choose_version

pytestmark = pytest.mark.slow

METADATA_KEYS = {"format", "format_version", "name", "version", "class_names", "num_classes",
                 "image_size", "latent_dim", "model_config", "train_config", "data",
                 "checkpoint", "run_dir", "exported_at", "hvitgan_tf_version"}


@pytest.fixture(scope="module")
def loaded(tiny_saved_model):
    import tensorflow as tf

    return tf.saved_model.load(tiny_saved_model[1])


@pytest.fixture(scope="module")
def gan(tiny_run_dir):
    """The run's networks, loaded the way export_run loads them."""
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.gan import HViTGAN
    from hvitgan_tf.training.runner import load_run

    model_config, train_config, data = load_run(tiny_run_dir)
    model = HViTGAN(model_config, train_config, data["class_counts"])
    model.compile()
    model.load_weights(checkpoints.resolve(tiny_run_dir, "best"))
    return model


def generate(loaded, labels, seeds, truncation=1.0):
    import tensorflow as tf

    labels = np.asarray(labels, np.int32)
    out = loaded.signatures["generate"](
        label=tf.constant(labels), seed=tf.constant(np.asarray(seeds, np.int64)),
        truncation=tf.constant(np.broadcast_to(np.float32(truncation), labels.shape)))
    return {k: v.numpy() for k, v in out.items()}


def test_layout_and_metadata(tiny_saved_model, tiny_run_dir):
    base, version_dir = tiny_saved_model
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    metadata = read_export_metadata(base)  # the base folder: its highest version
    assert metadata["model_dir"] == os.path.abspath(version_dir) == resolve_model_dir(base)
    assert METADATA_KEYS <= set(metadata)
    assert metadata["format"] == "hvitgan-tf/savedmodel" and metadata["format_version"] == 1
    assert (metadata["name"], metadata["version"]) == ("hvitgan", 1)
    assert metadata["class_names"] == ["dab_negative", "dab_positive"]
    assert (metadata["image_size"], metadata["latent_dim"], metadata["num_classes"]) == (16, 16, 2)
    assert metadata["model_config"]["preset"] == "tiny"
    assert metadata["run_dir"] == os.path.abspath(tiny_run_dir)
    assert metadata["checkpoint"]["path"].endswith(".weights.h5")
    assert metadata["checkpoint"]["iteration"] == 4
    names = open(os.path.join(version_dir, "assets.extra", "class_names.txt")).read()
    assert names == "dab_negative\ndab_positive\n"
    # Readable by a serving user other than the exporter (temporary files start private).
    for root, _, files in os.walk(version_dir):
        assert stat.S_IMODE(os.stat(root).st_mode) & 0o005 == 0o005, root
        for file in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, file)).st_mode) & 0o004, file
    assert not [e for e in os.listdir(base) if e.startswith(".tmp-")]


def test_finding_exports_and_refusing_other_folders(tmp_path, tiny_saved_model):
    import tensorflow as tf

    with pytest.raises(UserError, match="does not exist"):
        read_export_metadata(tmp_path / "missing")
    (tmp_path / "empty" / "7").mkdir(parents=True)  # a version folder without a SavedModel
    with pytest.raises(UserError, match="holds no versions"):
        read_export_metadata(tmp_path / "empty")
    plain = tmp_path / "plain" / "3"
    tf.saved_model.save(tf.Module(), str(plain))
    with pytest.raises(UserError, match="not an hvitgan-tf export"):
        read_export_metadata(tmp_path / "plain")
    (plain / "assets.extra").mkdir()
    (plain / "assets.extra" / "hvitgan.json").write_text('{"format": "something-else"}')
    with pytest.raises(UserError, match="does not describe an hvitgan-tf SavedModel"):
        read_export_metadata(plain)
    # The highest integer version wins (TF Serving's rule), not the newest or the last listed.
    base = tmp_path / "versions"
    for version in (2, 10, 9):
        tf.saved_model.save(tf.Module(), str(base / str(version)))
    (base / "11").mkdir()  # incomplete: ignored
    assert resolve_model_dir(base) == str(base / "10")


def test_versions_are_numbered_and_never_overwritten(tmp_path, tiny_run_dir, tiny_saved_model):
    from hvitgan_tf.export import export_run

    base = tmp_path / "hvitgan"
    assert _choose_version(str(base), None) == 1
    (base / "1").mkdir(parents=True)
    (base / "4").mkdir()
    (base / ".tmp-abc").mkdir()
    assert _choose_version(str(base), None) == 5
    assert _choose_version(str(base), 3) == 3
    for bad in (0, -1, "x", True):
        with pytest.raises(UserError, match="positive integer"):
            _choose_version(str(base), bad)
    export_dir = os.path.dirname(tiny_saved_model[0])
    with pytest.raises(UserError, match="already exists; exported versions are never overwritten"):
        export_run(tiny_run_dir, export_dir=export_dir, name="hvitgan", version=1)
    with pytest.raises(UserError, match="model name"):
        export_run(tiny_run_dir, export_dir=str(tmp_path), name="../up")
    with pytest.raises(UserError, match="not 'last', 'best' or an existing file"):
        export_run(tiny_run_dir, export_dir=str(tmp_path), checkpoint="iter-9.weights.h5")
    with pytest.raises(UserError, match="not an hvitgan-tf run folder"):
        export_run(str(tmp_path), export_dir=str(tmp_path))


def test_a_failed_export_leaves_no_version_behind(tmp_path, tiny_run_dir, monkeypatch):
    from hvitgan_tf.export import savedmodel

    class HalfWrittenArchive:
        def write_out(self, path, verbose=False):
            open(os.path.join(path, "saved_model.pb"), "wb").write(b"half")
            raise RuntimeError("disk full")

    monkeypatch.setattr(savedmodel, "_load_networks", lambda *args: (None, None))
    monkeypatch.setattr(savedmodel, "build_archive", lambda *args: HalfWrittenArchive())
    with pytest.raises(RuntimeError, match="disk full"):
        savedmodel.export_run(tiny_run_dir, export_dir=str(tmp_path), checkpoint="last")
    assert os.listdir(tmp_path / "hvitgan") == []  # neither "1" nor a temporary folder


def test_saved_model_cli_shows_and_runs_the_signatures(tiny_saved_model, tmp_path, loaded):
    """The TF1-style loader TF Serving uses (docs/keras3-notes.md §5), through saved_model_cli. (Bad
    requests fail the same way through either loader: see the parametrized test below.)"""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    version_dir = tiny_saved_model[1]
    inputs = {"label": np.array([0, 1, 1], np.int32), "seed": np.array([3, 4, 2**40], np.int64),
              "truncation": np.array([1.0, 0.5, 0.0], np.float32)}
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = [cli, "run", "--dir", version_dir, "--tag_set", "serve", "--signature_def",
           "generate"]
    jobs = {
        "show": subprocess.Popen([cli, "show", "--dir", version_dir, "--all"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "run": subprocess.Popen(run + [
            "--inputs", f"label={tmp_path}/label.npy;seed={tmp_path}/seed.npy;"
                        f"truncation={tmp_path}/truncation.npy",
            "--outdir", str(tmp_path / "out")], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True),
    }
    results = {name: (job.communicate(timeout=300), job.returncode) for name, job in jobs.items()}

    (show, error), code = results["show"]
    assert code == 0, error[-2000:]
    signatures = {}
    for block in show.split("signature_def['")[1:]:
        signatures[block[:block.index("'")]] = block
    assert {"generate", "serving_default", "classify", "features", "metadata"} <= set(signatures)
    generate_block = signatures["generate"]
    for expected in ("inputs['label']", "DT_INT32", "inputs['seed']", "DT_INT64",
                     "inputs['truncation']", "DT_FLOAT", "outputs['images']", "DT_UINT8",
                     "shape: (-1, 16, 16, 3)", "outputs['probabilities']", "shape: (-1, 2)",
                     "outputs['confidence']"):
        assert expected in generate_block, expected
        assert expected in signatures["serving_default"], expected  # the same signature
    for name in ("classify", "features"):
        assert "inputs['images']" in signatures[name] and "DT_UINT8" in signatures[name]
        assert "shape: (-1, -1, -1, 3)" in signatures[name]
    assert "outputs['label']" in signatures["classify"]
    assert "shape: (-1, 32)" in signatures["features"]

    (_, error), code = results["run"]
    assert code == 0, error[-2000:]
    expected = generate(loaded, inputs["label"], inputs["seed"], inputs["truncation"])
    for name in ("images", "probabilities", "confidence"):
        np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{name}.npy"), expected[name])


def test_generate_matches_the_python_networks(loaded, gan):
    import tensorflow as tf

    from hvitgan_tf import imaging
    from hvitgan_tf.noise import truncated_noise

    labels, seeds = np.array([0, 1, 0, 1, 1]), np.array([5, 6, 7, 8, 2**62])
    psi = np.array([1.0, 1.0, 0.5, 2.0, 0.0], np.float32)
    out = generate(loaded, labels, seeds, psi)
    z = truncated_noise(tf.constant(seeds, tf.int64), 16, tf.constant(psi))
    expected = imaging.to_uint8(gan.ema_generator([z, tf.constant(labels, tf.int32)]))
    difference = np.abs(out["images"].astype(int) - expected.astype(int))
    # Batched Python vs per-sample SavedModel: float round-off may move a pixel by one level.
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01
    _, logits = gan.discriminator(imaging.to_float(out["images"]))
    probabilities = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(out["probabilities"], probabilities, atol=1e-5)
    np.testing.assert_array_equal(out["confidence"],
                                  out["probabilities"][np.arange(5), labels])
    features = loaded.signatures["features"](images=tf.constant(out["images"]))["features"]
    np.testing.assert_allclose(features, gan.discriminator.features(
        imaging.to_float(out["images"])), atol=1e-5)


def test_same_inputs_give_the_same_bytes_whatever_the_batch(loaded):
    import tensorflow as tf

    labels = np.arange(24) % 2
    seeds = np.arange(24) * 7919 + 11
    psi = np.linspace(0, 2, 24).astype(np.float32)
    full = generate(loaded, labels, seeds, psi)
    order = np.random.default_rng(0).permutation(24)
    shuffled = generate(loaded, labels[order], seeds[order], psi[order])
    for key in ("images", "probabilities", "confidence"):
        np.testing.assert_array_equal(shuffled[key], full[key][order])
    for i in (0, 5, 23):
        one = generate(loaded, labels[i:i + 1], seeds[i:i + 1], psi[i:i + 1])
        np.testing.assert_array_equal(one["images"][0], full["images"][i])
        np.testing.assert_array_equal(one["probabilities"][0], full["probabilities"][i])
    # classify on the generated uint8 images gives exactly generate's probabilities.
    classified = loaded.signatures["classify"](images=tf.constant(full["images"][:7]))
    np.testing.assert_array_equal(classified["probabilities"], full["probabilities"][:7])
    np.testing.assert_array_equal(classified["label"], full["probabilities"][:7].argmax(1))
    # psi = 0 is the mean latent: one image per class, whatever the seed.
    zero = generate(loaded, [1, 1, 1], [1, 2, 3], 0.0)["images"]
    assert np.array_equal(zero[0], zero[1]) and np.array_equal(zero[1], zero[2])
    empty = generate(loaded, [], [], 1.0)
    assert empty["images"].shape == (0, 16, 16, 3) and empty["probabilities"].shape == (0, 2)


def test_classify_resizes_other_sizes_like_the_data_pipeline(loaded, gan):
    import tensorflow as tf

    from hvitgan_tf.data.base import to_model_input

    images = np.random.default_rng(1).integers(0, 256, (3, 40, 30, 3), dtype=np.uint8)
    out = loaded.signatures["classify"](images=tf.constant(images))
    _, logits = gan.discriminator(to_model_input(tf.constant(images), 16))
    np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(logits), atol=1e-5)
    assert out["label"].dtype == tf.int32


@pytest.mark.parametrize("labels, seeds, psi, message", [
    ([0, 2], [1, 2], [1.0, 1.0], "label must be in [0, 2)"),
    ([-1, 0], [1, 2], [1.0, 1.0], "label must be in [0, 2)"),
    ([0, 1], [1, 2], [1.0, -0.1], "truncation (psi) must be >= 0"),
    ([0, 1], [1, 2], [1.0, np.nan], "truncation (psi) must be >= 0"),
    ([0, 1], [1], [1.0, 1.0], "must have the same length"),
])
def test_bad_generate_requests_fail_inside_the_graph(loaded, labels, seeds, psi, message):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures["generate"](label=tf.constant(labels, tf.int32),
                                      seed=tf.constant(seeds, tf.int64),
                                      truncation=tf.constant(psi, tf.float32))
    assert message in error.value.message


def test_metadata_signature(loaded, tiny_saved_model):
    out = loaded.signatures["metadata"]()
    assert [n.decode() for n in out["class_names"].numpy()] == ["dab_negative", "dab_positive"]
    assert int(out["image_size"]) == 16 and int(out["num_classes"]) == 2
    assert int(out["latent_dim"]) == 16
    described = json.loads(out["json"].numpy().decode())
    on_disk = read_export_metadata(tiny_saved_model[1])
    assert described["exported_at"] == on_disk["exported_at"]
    assert described["model_config"] == on_disk["model_config"]
