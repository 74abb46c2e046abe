"""Beam's sampler holds an output folder the way ``hvitgan-tf sample`` does: the CLI is refused
while a Beam job has the folder (the other way round, and CLI against CLI or export against
export with real victims, in test_faults_kill.py; train and the rest against a bare lock holder
in tests/test_one_writer.py)."""
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fault_injection import error_line, snapshot
from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Plans a Beam job as pipelines.beam_sample does before its pipeline starts (OUT opened and
# held), then stays there as a long pipeline would.
BEAM_JOB = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pipelines import beam_sample
args, _ = beam_sample.parse_args(sys.argv[2:])
beam_sample.plan_job(args)
print("planned", flush=True)
time.sleep(600)
"""


def test_the_cli_is_refused_while_a_beam_job_holds_the_folder(tiny_saved_model, tmp_path,
                                                              lock_dir, reuse_loaded_models):
    out = tmp_path / "out"
    options = ["--model", tiny_saved_model[0], "--out", str(out), "--per-class", "2",
               "--threshold", "0", "--seed", "0"]
    beam = subprocess.Popen([sys.executable, "-c", BEAM_JOB, REPO, *options], cwd=REPO,
                            env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    try:
        assert beam.stdout.readline().strip() == "planned"
        before = snapshot(out)
        result = CliRunner().invoke(cli, ["sample", *options, "--format", "tfrecord",
                                          "--quiet"])
        assert (f"{os.path.realpath(out)} is in use by another hvitgan-tf sample "
                f"(pid {beam.pid})") in error_line(result)
        assert snapshot(out) == before
    finally:
        beam.kill()
        beam.wait()
