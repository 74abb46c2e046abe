"""Files the tool wrote earlier and reads back: damaged ones are named, not tracebacks; new
files get the permissions of the umask like any other file."""
import json
import os
import shutil
import stat

import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli
from hvitgan_tf.fileio import DamagedJSONError, atomic_open, read_json, write_json


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_follow_the_umask(tmp_path, monkeypatch):
    import hvitgan_tf.fileio as fileio

    monkeypatch.setattr(fileio, "_UMASK", 0o022)  # what the umask was at import
    fileio.write_json(tmp_path / "a.json", {"x": 1})
    with fileio.atomic_directory(tmp_path / "folder") as folder:
        open(os.path.join(folder, "f"), "w").close()
    assert _mode(tmp_path / "a.json") == 0o644  # mkstemp alone gives 0600
    assert _mode(tmp_path / "folder") == 0o755  # mkdtemp alone gives 0700
    monkeypatch.setattr(fileio, "_UMASK", 0o077)
    fileio.write_json(tmp_path / "private.json", {"x": 1})
    assert _mode(tmp_path / "private.json") == 0o600


@pytest.mark.parametrize("content, where", [(b'{"model": {"preset": "tiny"', "line 1"),
                                            (b"\xff\xfe\x00garbage", "not UTF-8"),
                                            (b"", "line 1, column 1")])
def test_damaged_json_names_the_file_and_the_place(tmp_path, content, where):
    path = tmp_path / "run.json"
    path.write_bytes(content)
    with pytest.raises(DamagedJSONError) as caught:
        read_json(path)
    assert str(path) in str(caught.value) and where in str(caught.value)
    assert isinstance(caught.value, json.JSONDecodeError)  # callers that recover still do


def test_good_json_round_trips(tmp_path):
    write_json(tmp_path / "ok.json", {"a": [1, 2]})
    assert read_json(tmp_path / "ok.json") == {"a": [1, 2]}
    with atomic_open(tmp_path / "t.txt") as handle:
        handle.write("x")
    assert (tmp_path / "t.txt").read_text() == "x"


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_resume_with_a_damaged_run_json_is_a_clear_error(tiny_run_dir, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    record = run / "run.json"
    if damage == "truncated":
        record.write_text(record.read_text()[:40])
    else:
        record.write_text(json.dumps({"something": "else"}))
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "5",
                                      "--no-export"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert str(record) in result.output
    if damage == "truncated":
        assert "is damaged: not valid JSON" in result.output and " line " in result.output
    else:
        assert "not a run record" in result.output


TINY = ["--preset", "tiny", "--limit", "16", "--batch-size", "4", "--n-critic", "1",
        "--diffaug", "none", "--no-export"]


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    run = tmp_path_factory.mktemp("damaged") / "run"
    result = CliRunner().invoke(cli, ["train", *TINY, "--steps", "3", "--checkpoint-every",
                                      "1", "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_resume_from_a_truncated_last_checkpoint_falls_back_and_says_so(three_checkpoints,
                                                                         tmp_path):
    run = tmp_path / "run"
    shutil.copytree(three_checkpoints, run)
    last = run / "checkpoints" / "iter-00000003.weights.h5"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert f"the last checkpoint {last} is damaged" in result.output
    assert "iteration 2) instead" in result.output and "trained" in result.output
    assert json.loads((run / "checkpoints" / "last.json").read_text())["iteration"] == 4


@pytest.mark.parametrize("foreign", ["/etc/passwd", "truncated"])
def test_export_of_a_foreign_or_damaged_checkpoint_is_a_clear_error(three_checkpoints,
                                                                    tmp_path, foreign):
    path = foreign
    if foreign == "truncated":
        source = three_checkpoints / "checkpoints" / "iter-00000003.weights.h5"
        path = str(tmp_path / "cut.weights.h5")
        with open(path, "wb") as handle:
            handle.write(source.read_bytes()[:4096])
    result = CliRunner().invoke(cli, ["export", str(three_checkpoints), "--checkpoint", path,
                                      "--export-dir", str(tmp_path / "models")])
    assert result.exit_code == 2, result.output
    assert f"cannot read the checkpoint {path}" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "models" / "hvitgan" / "1").exists()


def test_sample_from_a_truncated_saved_model_names_it_and_writes_nothing(tiny_saved_model,
                                                                         tmp_path):
    version = tmp_path / "models" / "hvitgan" / "1"
    shutil.copytree(tiny_saved_model[1], version)
    graph = version / "saved_model.pb"
    graph.write_bytes(graph.read_bytes()[:1000])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["sample", "--model", str(version.parent), "--out",
                                      str(out), "--per-class", "2"])
    assert result.exit_code == 2, result.output
    assert f"cannot load the SavedModel in {version}" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # no manifest, no sampling.json before the model loaded


def test_classifier_features_accept_a_model_name_folder(tiny_saved_model):
    import numpy as np

    from hvitgan_tf.metrics.feature_extractors import ClassifierFeatureExtractor

    by_name = ClassifierFeatureExtractor(tiny_saved_model[0])  # saved_models/hvitgan
    by_version = ClassifierFeatureExtractor(tiny_saved_model[1])  # saved_models/hvitgan/1
    images = np.zeros((2, 16, 16, 3), np.uint8)
    np.testing.assert_array_equal(by_name(images), by_version(images))
