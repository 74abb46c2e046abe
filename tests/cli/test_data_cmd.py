"""`hvitgan-tf data inspect` / `data preview` through click's CliRunner."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hvitgan_tf.cli.main import cli


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_inspect_demo_prints_both_classes_and_counts(runner):
    result = runner.invoke(cli, ["data", "inspect"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "dab_negative" in out and "dab_positive" in out
    assert "48x48x3 uint8" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.split() and line.split()[0] in ("train", "validation", "test")}
    assert rows == {"train": ["720", "340", "380"], "validation": ["90", "43", "47"],
                    "test": ["90", "43", "47"]}


def test_inspect_json_with_a_subset(runner):
    result = runner.invoke(cli, ["data", "inspect", "--limit", "100", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["splits"]["train"]["num_examples"] == 100
    assert info["splits"]["test"]["num_examples"] == 90
    assert info["subset"]["limit"] == 100 and info["class_names"] == ["dab_negative",
                                                                      "dab_positive"]


def test_preview_writes_a_png_atomically(runner, tmp_path):
    out = tmp_path / "grids" / "demo.png"
    result = runner.invoke(cli, ["data", "preview", "--out", str(out), "--per-class", "5"])
    assert result.exit_code == 0, result.output
    last_line = result.stdout.strip().splitlines()[-1]
    assert str(out) in last_line and "5 dab_negative, 5 dab_positive" in last_line
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height > 100
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # not a blank canvas
    assert os.listdir(out.parent) == ["demo.png"]  # no temporary file left behind


@pytest.mark.parametrize("args, message", [
    (["data", "inspect", "--data", "pcam"], "unknown data source 'pcam'"),
    (["data", "inspect", "--data", "folder:/nonexistent/x"], "does not exist"),
    (["data", "inspect", "--fraction", "0.5", "--limit", "10"], "not both"),
    (["data", "inspect", "--limit", "5000"], "larger than the training split"),
    (["data", "preview", "--out", "grid.jpg"], "ending in .png"),
])
def test_user_mistakes_exit_2_with_one_line(runner, args, message):
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert "Traceback" not in result.output


def test_corrupt_folder_image_is_named(runner, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name / "ok.png")
    (tmp_path / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}"])
    assert result.exit_code == 2 and str(tmp_path / "b" / "bad.png") in result.stderr
    result = runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}",
                                 "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "Skipped" in result.stdout and "bad.png" in result.stdout


def test_inspect_says_what_a_16_bit_png_is_and_what_it_becomes(runner, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / name /
                                                                        f"{i}.png")
    deep = tmp_path / "b" / "deep.png"
    Image.fromarray(np.full((32, 32), 30000, np.uint16)).save(deep)
    assert Image.open(deep).mode == "I;16"
    result = runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}"])
    assert result.exit_code == 0, result.output
    lines = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip()
             for line in result.stdout.splitlines() if "  " in line}
    assert lines["Stored as"].startswith(
        "32x32 px: 6 8-bit RGB PNG, 1 16-bit grayscale PNG; read as 32x32x3 uint8 (served as")
    assert lines["Converted"] == ("1 16-bit grayscale PNG to 8-bit RGB (value / 257, grey in "
                                  f"all three channels), e.g. {deep}")
    info = json.loads(runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}",
                                          "--json"]).stdout)
    assert [kind["found"] for kind in info["file_kinds"]] == ["8-bit RGB PNG",
                                                             "16-bit grayscale PNG"]
    # 8-bit RGB only: the table reads as before, without a Converted line.
    os.remove(deep)
    plain = runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}"]).stdout
    assert "32x32x3 uint8 (served as" in plain and "Converted" not in plain


def test_inspect_names_a_1x1_image_as_too_small(runner, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / name / "ok.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "b" / "dot.png")
    result = runner.invoke(cli, ["data", "inspect", "--data", f"folder:{tmp_path}"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'b' / 'dot.png'}: too small: 1x1 px" in lines[0]
