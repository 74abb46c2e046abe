"""The training pipeline in TFX (docs/method.md §10): ImportExampleGen -> StatisticsGen -> SchemaGen
-> Trainer (``pipelines.trainer_module.run_fn``) -> Pusher to ``saved_models/<name>/``.

    # locally (LocalDagRunner, metadata in a SQLite file under --pipeline-root):
    python -m pipelines.tfx_pipeline run --data-root DIR_OF_TFRECORDS \\
        --pipeline-root tfx_root --serving-dir saved_models/hvitgan --preset small --steps 2000
    # Kubeflow Pipelines / Vertex AI: a pipeline JSON for an image built from Dockerfile.tfx
    python -m pipelines.tfx_pipeline compile --output hvitgan_pipeline.json \\
        --image REGISTRY/hvitgan-tfx:latest --data-root gs://B/patches \\
        --pipeline-root gs://B/tfx --serving-dir gs://B/saved_models/hvitgan

``--data-root`` holds TFRecords of ``tf.train.Example`` in the layout ``hvitgan-tf sample``
writes (``image/encoded`` PNG/JPEG, ``image/class/label``, ``image/class/text``): sample
output, or any dataset converted to it. ImportExampleGen splits them 9:1 into ``train`` and
``eval`` (the Trainer trains on ``train``; hvitgan's run makes its own validation split for FID)
and writes them gzipped; StatisticsGen and SchemaGen describe them; the Trainer runs
``run_fn``; the Pusher copies the export to ``--serving-dir/<timestamp>/`` (the Pusher names
versions by time; TF Serving and ``hvitgan-tf sample`` take the highest). There is no
Evaluator: model quality is FID (``hvitgan-tf evaluate``), which TFMA does not compute, so the
Pusher pushes every trained model.

TFX 1.21 (the release for TensorFlow 2.21) needs glibc >= 2.39 (ml-metadata,
tensorflow-data-validation wheels): install ``.[tfx]`` there, or use ``Dockerfile.tfx``.
TFX is imported only when a pipeline is built, so ``--help`` and the argument checks work
without it.
"""
from __future__ import annotations

import argparse
import os
import sys

from hvitgan_tf.errors import UserError

TRAINER_RUN_FN = "pipelines.trainer_module.run_fn"
DEFAULT_NAME = "hvitgan"


def import_tfx():
    """``tfx.v1``, or a ``UserError`` saying how to get it."""
    try:
        from tfx import v1 as tfx
    except ImportError as error:
        raise UserError(
            f"TFX is not available ({error}). Install it with pip install '.[tfx]' on a host "
            "with glibc >= 2.39, or build and use Dockerfile.tfx") from None
    # tfx.v1 sets TF_USE_LEGACY_KERAS=1 (through tensorflow_transform); the Trainer's run_fn
    # uses ``import keras`` (Keras 3) only, which that variable does not affect.
    return tfx


def create_pipeline(*, pipeline_name: str, pipeline_root: str, data_root: str,
                    serving_dir: str, custom_config: dict, train_steps: int = None,
                    metadata_path: str = None, beam_pipeline_args=None):
    """The ``tfx.dsl.Pipeline`` (see the module docstring).

    Args:
        data_root: folder of TFRecord files (``*.tfrecord``, ``*.gz``) of ``tf.train.Example``.
        serving_dir: ``saved_models/<name>``; the Pusher adds a version folder.
        custom_config: ``pipelines.trainer_module.CONFIG_KEYS`` (preset, steps, ...).
        metadata_path: SQLite file of ML Metadata (local runs); ``None`` for Kubeflow/Vertex,
            which bring their own metadata store.
    """
    from pipelines.trainer_module import read_custom_config

    tfx = import_tfx()
    custom_config = read_custom_config(custom_config)
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
        tfx.proto.SplitConfig.Split(name="train", hash_buckets=9),
        tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1),
    ]))
    example_gen = tfx.components.ImportExampleGen(input_base=data_root,
                                                  output_config=output_config)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=False)
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        # num_steps left unset means "custom_config decides" (epochs), not zero steps.
        train_args=(tfx.proto.TrainArgs(splits=["train"], num_steps=int(train_steps))
                    if train_steps else tfx.proto.TrainArgs(splits=["train"])),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
        custom_config=custom_config,
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))
    metadata = (tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
                if metadata_path else None)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, trainer, pusher],
        metadata_connection_config=metadata,
        beam_pipeline_args=list(beam_pipeline_args or []),
    )


def run_local(pipeline):
    """Run with ``LocalDagRunner`` in this process (Beam DirectRunner for the data steps)."""
    tfx = import_tfx()
    tfx.orchestration.LocalDagRunner().run(pipeline)


def compile_for_vertex(pipeline, output: str, image: str) -> str:
    """Write the Kubeflow Pipelines v2 / Vertex AI Pipelines JSON for ``pipeline``; every step
    runs in ``image`` (built from Dockerfile.tfx, pushed to a registry the cluster reads)."""
    tfx = import_tfx()
    output = os.path.abspath(output)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
    runner.run(pipeline, write_out=True)
    return output


# -- command line ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def make_parser():
    parser = _Parser(prog="python -m pipelines.tfx_pipeline", allow_abbrev=False,
                     description="hvitgan's TFX pipeline: run it locally, or compile it for "
                                 "Kubeflow Pipelines / Vertex AI.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run with LocalDagRunner"),
                       ("compile", "write a KubeflowV2DagRunner pipeline JSON")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--data-root", required=True,
                         help="folder of TFRecords in the sample record format")
        sub.add_argument("--pipeline-root", default="tfx_root",
                         help="where TFX keeps its artifacts")
        sub.add_argument("--serving-dir", default=f"saved_models/{DEFAULT_NAME}",
                         help="Pusher destination: saved_models/<name>")
        sub.add_argument("--pipeline-name", default="hvitgan")
        sub.add_argument("--preset", default="small")
        sub.add_argument("--steps", type=int, default=None,
                         help="training iterations (default: --epochs passes)")
        sub.add_argument("--epochs", type=int, default=None)
        sub.add_argument("--batch-size", type=int, default=None)
        sub.add_argument("--seed", type=int, default=None)
        if name == "compile":
            sub.add_argument("--output", default="hvitgan_pipeline.json")
            sub.add_argument("--image", required=True,
                             help="container image of Dockerfile.tfx, in a registry")
    return parser


def pipeline_from_args(args):
    custom_config = {"preset": args.preset,
                     "model_name": os.path.basename(os.path.normpath(args.serving_dir))}
    for key in ("epochs", "batch_size", "seed"):
        if getattr(args, key) is not None:
            custom_config[key] = getattr(args, key)
    local = args.command == "run"
    return create_pipeline(
        pipeline_name=args.pipeline_name, pipeline_root=args.pipeline_root,
        data_root=args.data_root, serving_dir=args.serving_dir, custom_config=custom_config,
        train_steps=args.steps,
        metadata_path=os.path.join(args.pipeline_root, "metadata.sqlite") if local else None)


def main(argv=None):
    try:
        args = make_parser().parse_args(argv)
        if args.command == "run" and not os.path.isdir(args.data_root):
            raise UserError(f"--data-root {args.data_root} is not a folder of TFRecords")
        pipeline = pipeline_from_args(args)
        if args.command == "run":
            run_local(pipeline)
            print(f"pushed to {args.serving_dir}/<version>/ (newest version is served)")
        else:
            print(f"wrote {compile_for_vertex(pipeline, args.output, args.image)}")
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
