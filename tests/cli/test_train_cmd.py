"""``hvitgan-tf train --resume`` takes the options it is not given from the run it continues."""
import json

import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli

pytestmark = pytest.mark.slow

TINY = ["--preset", "tiny", "--limit", "16", "--batch-size", "4", "--n-critic", "1",
        "--diffaug", "none", "--checkpoint-every", "0"]


def test_resume_of_a_no_export_run_does_not_export(tmp_path):
    run, models = tmp_path / "run", tmp_path / "models"
    first = CliRunner().invoke(cli, ["train", *TINY, "--steps", "1", "--no-export",
                                     "--export-dir", str(models), "--out", str(run)])
    assert first.exit_code == 0, first.output
    assert json.loads((run / "run.json").read_text())["export"]["export"] is False
    resumed = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "trained" in resumed.output and "exported:" not in resumed.output
    assert not models.exists()


def test_the_logistic_game_is_chosen_on_the_command_line_and_kept_on_resume(tmp_path):
    run = tmp_path / "run"
    first = CliRunner().invoke(cli, ["train", *TINY, "--steps", "1", "--no-export",
                                     "--adversarial-loss", "logistic", "--r1-gamma", "0.5",
                                     "--out", str(run)])
    assert first.exit_code == 0, first.output
    saved = json.loads((run / "run.json").read_text())["train"]
    assert (saved["adversarial_loss"], saved["r1_gamma"]) == ("logistic", 0.5)
    resumed = CliRunner().invoke(cli, ["train", "--out", str(run), "--resume", "--steps", "2"])
    assert resumed.exit_code == 0, resumed.output
    saved = json.loads((run / "run.json").read_text())["train"]
    assert (saved["adversarial_loss"], saved["r1_gamma"]) == ("logistic", 0.5)

    wrong = CliRunner().invoke(cli, ["train", *TINY, "--adversarial-loss", "hinge",
                                     "--out", str(tmp_path / "other")])
    assert wrong.exit_code == 2 and "hinge" in wrong.output and "wgan-gp" in wrong.output
