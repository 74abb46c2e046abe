"""``training.job``: a setting is the one given, else (on resume) the saved run's, else the
default; and the CLI's option defaults are the job's."""
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.fileio import write_json
from hvitgan_tf.models.config import preset
from hvitgan_tf.training.config import DATA_TRAIN_DEFAULTS, TrainConfig, data_train_defaults
from hvitgan_tf.training.job import DEFAULTS, build_job, job_settings
from hvitgan_tf.training.runner import run_file


def saved_run(folder):
    write_json(run_file(str(folder)), {
        "model": preset("tiny", num_classes=2).replace(class_projection=False).to_dict(),
        "train": TrainConfig(batch_size=4, lr_g=1e-4, class_warmup=7).to_dict(),
        "data": {"data": "glyphs", "limit": 40, "skip_bad": True, "spec": "glyphs", "seed": 0,
                 "class_names": ["a", "b"]},
        "fid_selection": {"every": 2, "features": "classifier:elsewhere", "num_samples": 50},
        "export": {"export": False, "export_dir": "elsewhere", "name": "other"},
    })
    return str(folder)


def test_resume_takes_what_is_not_given_from_the_saved_run(tmp_path):
    run = saved_run(tmp_path)
    settings = job_settings(run, {"batch_size": 8, "name": "given"}, resume=True)
    assert settings["batch_size"] == 8 and settings["name"] == "given"  # given wins
    assert (settings["lr_g"], settings["class_warmup"]) == (1e-4, 7)
    assert (settings["data"], settings["limit"], settings["skip_bad"]) == ("glyphs", 40, True)
    assert (settings["preset"], settings["class_projection"]) == ("tiny", False)
    assert (settings["fid_every"], settings["fid_features"], settings["fid_samples"]) == (
        2, "classifier:elsewhere", 50)
    assert (settings["export"], settings["export_dir"]) == (False, "elsewhere")
    # The saved run's value wins over its data's default too.
    assert settings["mode_seeking"] == TrainConfig.mode_seeking
    # Without --resume the saved run is not read: the defaults (of the demo data) fill in.
    assert job_settings(run, {"batch_size": 8}) == {**DEFAULTS, **data_train_defaults("demo"),
                                                    "batch_size": 8}


def test_the_demo_data_has_its_own_mode_seeking_default_that_an_option_overrides(tmp_path):
    run = str(tmp_path)
    assert DATA_TRAIN_DEFAULTS["demo"]["mode_seeking"] != TrainConfig.mode_seeking
    assert job_settings(run, {})["mode_seeking"] == DATA_TRAIN_DEFAULTS["demo"]["mode_seeking"]
    assert job_settings(run, {"data": "demo"})["mode_seeking"] == 1.0
    assert job_settings(run, {"data": "glyphs"})["mode_seeking"] == TrainConfig.mode_seeking
    assert job_settings(run, {"mode_seeking": 0.0})["mode_seeking"] == 0.0
    # ... and compares the two images of a pair after a blur, which an option also overrides.
    assert job_settings(run, {})["mode_seeking_blur"] == 3.0 != TrainConfig.mode_seeking_blur
    assert job_settings(run, {"data": "glyphs"})["mode_seeking_blur"] == 0.0
    assert job_settings(run, {"mode_seeking_blur": 1.5})["mode_seeking_blur"] == 1.5
    assert data_train_defaults("folder:somewhere") == {}
    assert data_train_defaults(" demo ") == DATA_TRAIN_DEFAULTS["demo"]


def test_a_resumed_demo_run_keeps_its_own_mode_seeking_weight(tmp_path):
    # A demo run saved with the general weight (or an older one) resumes with it, not with the
    # demo's default: the weight shapes the data stream's meaning, --resume must not change it.
    write_json(run_file(str(tmp_path)), {
        "model": preset("tiny", num_classes=2).to_dict(),
        "train": {k: v for k, v in TrainConfig(batch_size=4, mode_seeking=0.1).to_dict().items()
                  if k != "mode_seeking_blur"},
        "data": {"data": "demo", "spec": "demo", "seed": 0,
                 "class_names": ["dab_negative", "dab_positive"]},
    })
    assert job_settings(str(tmp_path), {}, resume=True)["mode_seeking"] == 0.1
    # A run saved before the blur existed compared raw pixels, and goes on doing so.
    assert job_settings(str(tmp_path), {}, resume=True)["mode_seeking_blur"] == 0.0
    assert job_settings(str(tmp_path), {"mode_seeking": 0.0}, resume=True)["mode_seeking"] == 0.0


def test_settings_that_cannot_be_honoured_are_refused(tmp_path):
    with pytest.raises(UserError, match="--resume: .*missing does not exist"):
        job_settings(str(tmp_path / "missing"), resume=True)
    with pytest.raises(UserError, match="not an hvitgan-tf run folder"):
        job_settings(str(tmp_path), resume=True)
    with pytest.raises(UserError, match="unknown training setting.*epoch"):
        job_settings(str(tmp_path), {"epoch": 3})


def test_the_train_command_shows_the_job_defaults():
    """The command passes on only the options given, so a default it shows that is not the
    job's would be a lie in --help."""
    import click

    from hvitgan_tf.cli.train_cmd import train

    context = click.Context(train)
    # --deterministic sets up TensorFlow's runtime before the job exists; it is not a job option.
    shown = {param.name: param.get_default(context) for param in train.params
             if param.name not in ("run_dir", "resume", "deterministic")}
    assert shown.pop("no_class_projection") is False and DEFAULTS["class_projection"] is None
    assert shown == {name: DEFAULTS[name] for name in shown}
    assert set(shown) | {"class_projection"} == set(DEFAULTS)


def test_the_model_is_the_presets_for_the_data_it_trains_on(tmp_path):
    # `small` smooths its generator for tissue but not for the glyphs (docs/method.md §11.18).
    glyphs = build_job(str(tmp_path / "glyphs"), {"data": "glyphs", "limit": 20}).model_config
    assert glyphs == preset("small", 10, data="glyphs")
    assert not glyphs.generator.shuffle_blur
    demo = build_job(str(tmp_path / "demo"), {"limit": 20}).model_config
    assert demo == preset("small", 2) and demo.generator.shuffle_blur
