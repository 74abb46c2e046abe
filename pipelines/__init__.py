"""Pipelines that run hvitgan-tf on existing engines (docs/method.md §10). Each module is a ``python
-m`` entry point with ``--help``:

``beam_sample``      ``hvitgan-tf sample --format tfrecord`` as an Apache Beam pipeline
                     (DirectRunner here; Dataflow / Flink / Spark through Beam's own options)
``beam_generation``  its transforms: the SavedModel ``ModelHandler``, selection, shard writing
``tfx_pipeline``     ImportExampleGen -> StatisticsGen -> SchemaGen -> Trainer -> Pusher, run
                     with LocalDagRunner or compiled for Kubeflow Pipelines / Vertex AI
``trainer_module``   the Trainer's ``run_fn``: this package's training and export (no TFX import)
``two_workers``      ``hvitgan-tf train`` as a MultiWorkerMirroredStrategy cluster via TF_CONFIG
"""
