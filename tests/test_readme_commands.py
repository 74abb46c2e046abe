"""Every ``hvitgan-tf`` command in the README's bash blocks is one the CLI accepts (issue 13:
"run every command in the README in a test").

Each command is parsed by the real command line, down to the values of its options (types,
ranges, choices), without running it; the values that only the command checks (data sources,
presets, feature extractors, classifier names) are checked by the same functions the commands
call. The ``evaluate --features classifier:...`` and ``sample`` examples are then run as
written, in a folder laid out as the README assumes, against the tests' tiny model; the
training, export and benchmark examples would train or need PCam, so they are only parsed.
"""
import json
import os
import pathlib
import re
import shlex
import shutil

import click
import pytest
from click.testing import CliRunner

from hvitgan_tf.cli.main import cli

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_SEPARATORS = {"&&", "||", ";", "|"}


def readme_commands():
    """The argument lists of the ``hvitgan-tf`` commands in the README's bash blocks, with
    continued lines joined and comments dropped, in the order they appear."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words, command = shlex.split(line, comments=True), []
            for word in words + [";"]:
                if word not in _SEPARATORS:
                    command.append(word)
                    continue
                if command and command[0] == "hvitgan-tf":
                    commands.append(command[1:])
                command = []
    return commands


def parse(args):
    """``(command path, parameter values)`` of ``hvitgan-tf ARGS`` as the CLI parses them,
    without running it; a click usage error when it does not parse."""
    context = click.Context(cli, info_name="hvitgan-tf")
    command, path = cli, []
    args = list(args)
    while isinstance(command, click.Group):
        assert args and not args[0].startswith("-"), f"no sub-command in {args}"
        name = args.pop(0)
        command = command.get_command(context, name)
        assert command is not None, f"hvitgan-tf {' '.join(path + [name])} does not exist"
        path.append(name)
        if isinstance(command, click.Group):
            context = click.Context(command, info_name=name, parent=context)
    parsed = command.make_context(path[-1], args, parent=context)
    return " ".join(path), parsed.params


def check_values(params):
    """What the commands check themselves before they start: these must pass too."""
    from hvitgan_tf.data.forms import parse_source_spec
    from hvitgan_tf.metrics.feature_extractors import available_feature_extractors
    from hvitgan_tf.models.config import PRESETS

    if params.get("data"):
        parse_source_spec(params["data"])
    if params.get("preset"):
        assert params["preset"] in PRESETS, params["preset"]
    for option in ("features", "fid_features"):
        if params.get(option):
            kind = params[option].partition(":")[0]
            assert kind in available_feature_extractors(), params[option]
    if "models" in params:  # benchmark
        from hvitgan_tf.evaluation.benchmark_arms import (ABLATIONS, ClassifierOptions,
                                                          check_models)

        check_models([m for m in params["models"].split(",") if m], ClassifierOptions())
        ablations = [a for a in (params.get("ablations") or "").split(",") if a]
        assert ablations in ([], ["all"]) or set(ablations) <= set(ABLATIONS), ablations


COMMANDS = readme_commands()


def test_the_readme_shows_every_command():
    """The extraction finds the README's examples (not a silently empty list)."""
    shown = {args[0] for args in COMMANDS}
    assert {"data", "train", "export", "sample", "evaluate", "benchmark"} <= shown
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args)[:60])
def test_every_readme_command_parses(args):
    _, params = parse(args)
    check_values(params)


def readme_command(start):
    """The README's command that begins ``hvitgan-tf START`` (its arguments)."""
    found = [args for args in COMMANDS if " ".join(args).startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


@pytest.fixture
def readme_folder(tiny_saved_model, tmp_path, monkeypatch):
    """A working folder as the README's examples expect it: ``saved_models/hvitgan`` holding
    the tests' tiny model, and a private cache of real-data statistics."""
    shutil.copytree(tiny_saved_model[0], tmp_path / "saved_models" / "hvitgan")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HVITGAN_TF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HVITGAN_TF_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path


@pytest.mark.slow
def test_the_readme_evaluate_example_with_the_models_own_features_runs(readme_folder):
    args = readme_command("evaluate --model saved_models/hvitgan")
    assert "classifier:saved_models/hvitgan" in args
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = args[args.index("--out") + 1]
    report = json.loads((readme_folder / out).read_text())
    assert report["fid"]["features"].startswith("classifier:")
    assert report["classification"]["split"] == "test"


def relabelled_version(folder, version, class_names):
    """The tiny model as version ``version`` of ``folder``, its classes renamed (the README's
    example names PCam's classes; the networks do not know the names)."""
    source = sorted(p for p in folder.iterdir() if p.name.isdigit())[0]
    target = folder / str(version)
    shutil.copytree(source, target)
    metadata_file = target / "assets.extra" / "hvitgan.json"
    metadata = json.loads(metadata_file.read_text())
    metadata.update(version=version, class_names=list(class_names))
    metadata_file.write_text(json.dumps(metadata))
    (target / "assets.extra" / "class_names.txt").write_text(
        "".join(f"{name}\n" for name in class_names))
    return target


# --threshold 0: the tiny model's class head is barely trained (every confidence is near 0.5),
# so at the README's 0.8 no image would be kept; the option given last wins.
SAMPLE_EXAMPLES = ["sample --threshold 0.8 --per-class 100",  # the quick start's
                   "sample --threshold 0.8 --per-class 500",
                   "sample --model saved_models/hvitgan/3"]


@pytest.mark.slow
@pytest.mark.parametrize("start", SAMPLE_EXAMPLES)
def test_the_readme_sample_examples_run(readme_folder, start):
    args = readme_command(start)
    if "saved_models/hvitgan/3" in args:
        relabelled_version(readme_folder / "saved_models" / "hvitgan", 3, ["normal", "tumor"])
    result = CliRunner().invoke(cli, [*args, "--threshold", "0", "--quiet"])
    assert result.exit_code == 0, result.output
    out = readme_folder / args[args.index("--out") + 1]
    with open(out / "manifest.csv", encoding="utf-8") as handle:
        rows = handle.read().splitlines()[1:]
    if "--per-class" in args:
        assert len(rows) == 2 * int(args[args.index("--per-class") + 1])
    else:
        assert len(rows) == int(args[args.index("--num") + 1])
    if "--preview" in args:
        assert (readme_folder / args[args.index("--preview") + 1]).is_file()
    assert os.path.isdir(out)
