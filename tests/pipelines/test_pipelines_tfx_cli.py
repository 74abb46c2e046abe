"""``python -m pipelines.tfx_pipeline`` without TFX: a one-line error that says where TFX can
run, before anything else happens (TFX is hidden here even where it is installed)."""
import sys

import pytest

from pipelines import tfx_pipeline


@pytest.mark.parametrize("command", [
    ["run", "--data-root", "{tmp}", "--preset", "tiny", "--steps", "2"],
    ["compile", "--data-root", "gs://b/patches", "--image", "r/i:1", "--output", "{tmp}/p.json"],
])
def test_without_tfx_it_exits_2_naming_the_tfx_extra_and_the_container(
        command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tfx", None)  # "import tfx" now raises ImportError
    with pytest.raises(SystemExit) as stop:
        tfx_pipeline.main([part.format(tmp=tmp_path) for part in command])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: TFX is not available"), err
    assert "'.[tfx]'" in err[0] and "Dockerfile.tfx" in err[0]


def test_a_missing_data_root_is_refused_before_tfx_is_needed(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        tfx_pipeline.main(["run", "--data-root", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert "is not a folder of TFRecords" in capsys.readouterr().err
