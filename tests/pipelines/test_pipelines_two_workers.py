"""``python -m pipelines.two_workers``: two ``hvitgan-tf train`` processes joined by TF_CONFIG on
127.0.0.1 train one run end to end (strategy auto -> multi_worker); only the chief writes it."""
import json
import os
import subprocess
import sys

import pytest

from pipelines import two_workers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_two_cli_workers_train_one_run_that_only_the_chief_writes_and_exports(tmp_path):
    run_dir, export_dir = tmp_path / "run", tmp_path / "saved_models"
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.two_workers", "--out", str(run_dir), "--timeout", "840",
         "--preset", "tiny", "--steps", "2", "--limit", "32", "--batch-size", "4",
         "--n-critic", "1", "--diffaug", "none", "--checkpoint-every", "0",
         "--export-dir", str(export_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for worker in (0, 1):
        assert f"[worker {worker}] trained 2 iterations" in result.stdout

    record = json.load(open(run_dir / "run.json"))
    assert (record["strategy"], record["replicas"]) == ("multi_worker", 2)
    last = json.load(open(run_dir / "checkpoints" / "last.json"))
    assert last["iteration"] == 2
    assert os.path.isfile(run_dir / "checkpoints" / last["weights"])
    # One export, by the chief.
    assert os.listdir(export_dir / "hvitgan") == ["1"]
    assert "[worker 0] exported:" in result.stdout
    assert "[worker 1] exported:" not in result.stdout
    assert "[worker 1] checkpoint:" not in result.stdout
    assert "[worker 1] this worker computed and synchronised" in result.stdout
    # The workers leave together (a barrier after the chief's export), so the chief's
    # coordination service never sees a worker vanish.
    assert "CoordinationServiceError" not in result.stdout


def test_print_commands_gives_each_host_its_tf_config(capsys):
    two_workers.main(["--hosts", "gpu-a:2222,gpu-b:2222", "--print-commands", "--out", "runs/x",
                      "--preset", "pcam96"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# on gpu-a (chief):" and lines[2] == "# on gpu-b:"
    for index, line in ((0, lines[1]), (1, lines[3])):
        config = json.loads(line.split("=", 1)[1].split("' ", 1)[0].strip("'"))
        assert config == {"cluster": {"worker": ["gpu-a:2222", "gpu-b:2222"]},
                          "task": {"type": "worker", "index": index}}
        assert line.endswith("hvitgan-tf train --out runs/x --preset pcam96")


def test_tf_config_follows_tensorflow_s_layout():
    config = json.loads(two_workers.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config["task"] == {"type": "worker", "index": 1}
