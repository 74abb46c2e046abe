"""Same numbers on one device and on several: MirroredStrategy over two logical CPUs, and two
worker processes under MultiWorkerMirroredStrategy (docs/method.md §10, docs/keras3-notes.md
§2.3-2.6)."""
import json
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def _run(script, *args, env=None, timeout=600):
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *args],
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("extra", [(), ("color,translation", "0.1")],
                         ids=["default", "mode-seeking"])
def test_one_iteration_on_two_replicas_equals_one_device_with_the_same_global_batch(extra):
    # Mode seeking pairs images within the batch: the pairs must not straddle two replicas.
    report = _run("mirrored_vs_single.py", *extra)
    assert report["replicas"] == 2
    assert report["generator_change"] > 1e-5  # the iteration did move the weights
    # Two replicas add the same float32 numbers in another order: the weights differ by 3e-7
    # on an idle machine and up to 2e-6 under load, against an iteration's step of 5e-4 (the
    # learning rate); 1 % of the step leaves room for the rounding and none for a real error.
    tolerance = 0.01 * report["generator_change"]
    for network in ("generator", "discriminator", "ema_generator", "task_weights"):
        assert report[network] < tolerance, (network, report[network], tolerance)
    single, mirrored = report["logs_single"], report["logs_mirrored"]
    for name, value in single.items():
        assert mirrored[name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_agree_with_each_other_and_with_one_device(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    script = os.path.join(SCRIPTS, "multi_worker_train.py")
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": config, "TF_CPP_MIN_LOG_LEVEL": "3"}
        workers.append(subprocess.Popen(
            [sys.executable, script, str(tmp_path / f"run-{index}")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    chief, other = outputs
    assert chief["iterations"] == other["iterations"] == 3
    for name in ("generator", "discriminator", "ema_generator"):
        assert other[name] == pytest.approx(chief[name], rel=1e-6), name
    # Only the chief writes the run folder.
    assert (tmp_path / "run-0" / "checkpoints" / "last.json").exists()
    assert not (tmp_path / "run-1" / "checkpoints").exists()

    alone = _run("multi_worker_train.py", str(tmp_path / "single"), "--single")
    for name in ("generator", "discriminator", "ema_generator"):
        assert alone[name] == pytest.approx(chief[name], rel=1e-5), name
