"""The TFX pipeline itself: its components, a Kubeflow V2 / Vertex compile, and a LocalDagRunner
run that pushes a servable model. Needs TFX (1.21, for TensorFlow 2.21), whose ml-metadata and
tensorflow-data-validation wheels need glibc >= 2.39: run these in the image of Dockerfile.tfx.
The Trainer's run_fn is tested without TFX in test_pipelines_trainer_module.py."""
import json

import pytest

tfx = pytest.importorskip(
    "tfx", reason="TFX 1.21 cannot be installed on this host (its ml-metadata and "
                  "tensorflow-data-validation wheels need glibc >= 2.39); run in Dockerfile.tfx")

from pipeline_records import CLASSES, write_patch_records  # noqa: E402
from pipelines import tfx_pipeline  # noqa: E402

pytestmark = pytest.mark.slow


def make(tmp_path, **overrides):
    settings = dict(pipeline_name="hvitgan-test", pipeline_root=str(tmp_path / "root"),
                    data_root=str(tmp_path / "data"), serving_dir=str(tmp_path / "sm" / "hvitgan"),
                    custom_config={"preset": "tiny", "batch_size": 4, "n_critic": 1,
                                   "diffaug": "none", "checkpoint_every": 0, "verbose": 0},
                    train_steps=2, metadata_path=str(tmp_path / "root" / "metadata.sqlite"))
    settings.update(overrides)
    return tfx_pipeline.create_pipeline(**settings)


def test_the_pipeline_chains_example_gen_statistics_schema_trainer_pusher(tmp_path):
    pipeline = make(tmp_path)
    assert [component.id for component in pipeline.components] == [
        "ImportExampleGen", "StatisticsGen", "SchemaGen", "Trainer", "Pusher"]


def test_compiles_a_vertex_pipeline_json_that_runs_the_package_run_fn(tmp_path):
    output = tfx_pipeline.compile_for_vertex(make(tmp_path, metadata_path=None),
                                             str(tmp_path / "pipeline.json"), "registry/img:1")
    text = open(output).read()
    spec = json.loads(text)
    assert "pipelineSpec" in spec or "root" in spec
    assert "registry/img:1" in text and tfx_pipeline.TRAINER_RUN_FN in text


def test_local_dag_runner_trains_and_pushes_a_servable_model(tmp_path):
    write_patch_records(str(tmp_path / "data" / "patches.tfrecord"))
    tfx_pipeline.run_local(make(tmp_path))

    from hvitgan_tf.export import list_versions, read_export_metadata

    versions = list_versions(str(tmp_path / "sm" / "hvitgan"))
    assert len(versions) == 1
    metadata = read_export_metadata(str(tmp_path / "sm" / "hvitgan"))
    assert metadata["class_names"] == list(CLASSES)
