"""``hvitgan-tf sample``, ``sample()`` and ``python -m pipelines.beam_sample`` start from the same
defaults, the constants of ``hvitgan_tf.sampling.plan``, and their --help texts show them.

Beam promises the CLI's output for the same options; a default that differs between the two
would break that promise for anyone who leaves the option out. No model, no TensorFlow.
"""
import inspect

import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli
from hvitgan_tf.cli.sample_cmd import sample as sample_command
from hvitgan_tf.sampling import plan
from hvitgan_tf.sampling.sampler import _sample
from pipelines import beam_sample

#: option dest -> the constant every tool must default to
SHARED = {
    "threshold": plan.DEFAULT_THRESHOLD,
    "batch_size": plan.DEFAULT_BATCH_SIZE,
    "shard_size": plan.DEFAULT_SHARD_SIZE,
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_cli_beam_and_library_default_to_the_same_constant(name):
    cli_defaults = {param.name: param.default for param in sample_command.params}
    beam_defaults, _ = beam_sample.parse_args([])
    library_default = inspect.signature(_sample).parameters[name].default
    found = {"hvitgan-tf sample": cli_defaults[name],
             "pipelines.beam_sample": getattr(beam_defaults, name),
             "sampling.sample()": library_default}
    assert found == dict.fromkeys(found, SHARED[name])


def test_help_texts_show_the_shared_defaults():
    cli_help = CliRunner().invoke(cli, ["sample", "--help"], terminal_width=1000).output
    beam_help = " ".join(beam_sample.make_parser().format_help().split())
    cli_help = " ".join(cli_help.split())
    for value in (plan.DEFAULT_THRESHOLD, plan.DEFAULT_BATCH_SIZE, plan.DEFAULT_SHARD_SIZE):
        assert f"[default: {value}" in cli_help
        assert f"default {value})" in beam_help
    cap = f"{plan.DEFAULT_ATTEMPTS_PER_IMAGE} x"
    assert f"[default: {cap} the class's quota]" in cli_help
    assert f"(default {cap} quota)" in beam_help
