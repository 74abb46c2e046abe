"""``hvitgan-tf model summary``: per-stage geometry and parameter counts of both networks."""
import json
import re

from click.testing import CliRunner

from hvitgan_tf.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["model", "summary", *args])


def test_pcam96_summary_shows_the_spec_geometry_and_totals():
    result = run("--preset", "pcam96")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "resolution 6 -> 12 -> 24 -> 48 -> 96" in out
    assert "width      1024 -> 1024 -> 256 -> 64 -> 16" in out
    assert re.search(r"stage 1 +12x12 +1024 +bicubic +global", out)
    assert re.search(r"stage 3 +48x48 +64 +pixel shuffle +window 12x12", out)
    assert re.search(r"stage 4 +96x96 +16 +pixel shuffle +window 16x16", out)
    assert re.search(r"stage 4 +2\+3x3 +384 .*global", out)  # D: class + source + 3x3 tokens
    # The totals add up: G + D.
    totals = re.search(
        r"Total: ([\d,]+) parameters \(generator ([\d,]+) \+ discriminator ([\d,]+)\)", out)
    total, g, d = (int(number.replace(",", "")) for number in totals.groups())
    assert g + d == total
    assert f"Generator: {g:,} parameters" in out and f"Discriminator: {d:,} parameters" in out


def test_json_summary_counts_match_the_built_networks():
    from hvitgan_tf.models import build_discriminator, build_generator, preset

    result = run("--preset", "tiny", "--num-classes", "4", "--json")
    assert result.exit_code == 0, result.output
    described = json.loads(result.output)
    cfg = preset("tiny", num_classes=4)
    g = build_generator(cfg.generator).count_params()
    d = build_discriminator(cfg.discriminator).count_params()
    assert described["generator"]["parameters"] == g
    assert described["discriminator"]["parameters"] == d
    assert described["total_parameters"] == g + d
    for network in ("generator", "discriminator"):
        rows = described[network]["rows"]
        assert sum(row["parameters"] for row in rows) == described[network]["parameters"]
    assert described["discriminator"]["rows"][-1]["width"] == "4 + 1"  # four classes + source


def test_small_summary_rows_add_up_with_the_output_skips():
    from hvitgan_tf.models import build_generator, preset

    result = run("--preset", "small", "--json")
    assert result.exit_code == 0, result.output
    generator = json.loads(result.output)["generator"]
    assert generator["parameters"] == build_generator(preset("small").generator).count_params()
    assert sum(row["parameters"] for row in generator["rows"]) == generator["parameters"]
    assert generator["rows"][-1]["upsample"] == "bicubic skips"


def test_summary_of_a_saved_config_file(tmp_path):
    from hvitgan_tf.models import preset

    path = tmp_path / "model.json"
    path.write_text(preset("tiny").replace(class_projection=False).to_json())
    result = run("--config", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["preset"] == "tiny"


def test_bad_inputs_fail_with_one_line_and_exit_2(tmp_path):
    result = run("--preset", "huge")
    assert result.exit_code == 2 and "huge" in result.output
    bad = tmp_path / "model.json"
    bad.write_text('{"preset": "x", "generator": {"image_size": 40}, "discriminator": {}}')
    result = run("--config", str(bad))
    assert result.exit_code == 2
    assert "image_size" in result.output and "Traceback" not in result.output
    result = run("--config", str(tmp_path / "missing.json"))
    assert result.exit_code == 2 and "missing.json" in result.output
