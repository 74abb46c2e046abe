"""``pipelines.trainer_module.run_fn`` with a stand-in for TFX's ``fn_args``: it trains on
ExampleGen-style records (gzipped TFRecords in the ``sample`` record format) and leaves a
servable hvitgan SavedModel in ``serving_model_dir``. TFX itself is not needed (nor
installable here); test_pipelines_tfx.py runs the whole pipeline where TFX is installed."""
import json
import os
import types

import numpy as np
import pytest

from pipeline_records import CLASSES, write_patch_records
from pipelines import trainer_module
from hvitgan_tf.errors import UserError

pytestmark = pytest.mark.slow


def write_example_gen_split(folder):
    """``folder/Split-train/data_tfrecord-00000-of-00001.gz``, as ImportExampleGen names it."""
    split = os.path.join(folder, "Split-train")
    write_patch_records(os.path.join(split, "data_tfrecord-00000-of-00001.gz"), gzip=True)
    return os.path.join(split, "*")


def test_run_fn_trains_on_example_gen_records_and_exports_a_servable_model(tmp_path):
    pattern = write_example_gen_split(str(tmp_path / "examples"))
    fn_args = types.SimpleNamespace(
        train_files=[pattern], eval_files=[], train_steps=None,
        model_run_dir=str(tmp_path / "model_run"),
        serving_model_dir=str(tmp_path / "model" / "Format-Serving"),
        custom_config={"preset": "tiny", "steps": 2, "batch_size": 4, "n_critic": 1,
                       "diffaug": "none", "checkpoint_every": 0, "seed": 1, "verbose": 0})
    assert trainer_module.run_fn(fn_args) == fn_args.serving_model_dir

    run = json.load(open(tmp_path / "model_run" / "run.json"))
    assert run["data"]["spec"] == f"tfrecord:{pattern}"
    assert run["data"]["class_names"] == list(CLASSES)
    last = json.load(open(tmp_path / "model_run" / "checkpoints" / "last.json"))
    assert last["iteration"] == 2

    from hvitgan_tf.export import read_export_metadata
    from hvitgan_tf.sampling import ExportedModel

    serving = fn_args.serving_model_dir
    assert os.path.isfile(os.path.join(serving, "saved_model.pb"))
    metadata = read_export_metadata(serving)
    assert metadata["class_names"] == list(CLASSES)
    assert metadata["model_config"]["preset"] == "tiny"
    out = ExportedModel(serving).generate([0, 1], [5, 6])
    assert out["images"].shape == (2, 16, 16, 3) and out["images"].dtype == np.uint8
    assert os.listdir(tmp_path / "model") == ["Format-Serving"]


def test_run_fn_refuses_settings_it_cannot_honour(tmp_path):
    fn_args = types.SimpleNamespace(train_files=["a/*", "b/*"], custom_config={},
                                    model_run_dir="", serving_model_dir="")
    with pytest.raises(UserError, match="one training split"):
        trainer_module.run_fn(fn_args)
    fn_args.train_files, fn_args.custom_config = ["a/*"], {"preset": "tiny", "epoch": 3}
    with pytest.raises(UserError, match="unknown custom_config key.*epoch"):
        trainer_module.run_fn(fn_args)
