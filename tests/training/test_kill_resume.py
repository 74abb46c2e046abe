"""A training process killed with SIGKILL mid-epoch resumes from its last checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time

from hvitgan_tf.training import checkpoints


def _train_command(run_dir, *extra):
    # 64 demo patches, batch 4, n_critic 2 -> 8 iterations per epoch.
    return [sys.executable, "-m", "hvitgan_tf.cli.main", "train", "--preset", "tiny",
            "--limit", "64", "--batch-size", "4", "--n-critic", "2", "--epochs", "2",
            "--checkpoint-every", "2", "--diffaug", "color", "--no-export",
            "--out", str(run_dir), *extra]


def test_sigkill_mid_epoch_then_resume_continues_from_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_train_command(run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)
    last = run_dir / "checkpoints" / "last.json"
    deadline = time.time() + 600
    while not last.exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    killed_at = json.loads(last.read_text())["iteration"]
    assert 0 < killed_at < 16
    record = checkpoints.read_record(str(run_dir))  # the file it names is complete
    assert os.path.getsize(record["path"]) > 0

    resumed = subprocess.run(_train_command(run_dir, "--resume"), capture_output=True,
                             text=True, env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from iteration {killed_at} " in resumed.stdout
    assert "trained 16 iterations (2 epochs)" in resumed.stdout
    assert checkpoints.read_record(str(run_dir))["iteration"] == 16
    leftovers = [name for name in os.listdir(run_dir / "checkpoints") if name.startswith(".tmp-")]
    assert leftovers == []


def test_ctrl_c_names_the_kept_checkpoint_and_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # A job started in the background of a non-interactive shell (as CI may start pytest)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: restore it.
    process = subprocess.Popen(_train_command(run_dir), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    last = run_dir / "checkpoints" / "last.json"
    deadline = time.time() + 600
    while not last.exists():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    kept = checkpoints.read_record(str(run_dir))
    assert f"Kept {kept['path']} (iteration {kept['iteration']})" in stderr
    assert f"hvitgan-tf train --out {run_dir} --resume" in stderr
    assert "Traceback" not in stderr
