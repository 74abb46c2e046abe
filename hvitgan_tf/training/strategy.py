"""Choosing the ``tf.distribute`` strategy (docs/method.md §10).

``auto``: several hosts when ``TF_CONFIG`` describes a cluster, a TPU when one is attached,
``MirroredStrategy`` when more than one GPU is visible, otherwise the default single device.
"""
import json
import os

import tensorflow as tf

from hvitgan_tf.errors import UserError


def _cluster_size():
    spec = os.environ.get("TF_CONFIG")
    if not spec:
        return 0
    try:
        cluster = json.loads(spec).get("cluster", {})
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON: {error}") from None
    return sum(len(tasks) for tasks in cluster.values())


def shared_storage_hint():
    """A sentence for errors about a missing run folder when several hosts train together."""
    if _cluster_size() > 1:
        return (" With several hosts (TF_CONFIG) every worker must see the same run folder: "
                "put --out on storage they all mount (NFS, a shared disk, or gs://...).")
    return ""


def select_strategy(name="auto", devices=None):
    """Return ``(strategy, kind)`` with ``kind`` in default/mirrored/multi_worker/tpu.

    Args:
        name: ``auto`` | ``default`` | ``mirrored`` | ``multi_worker`` | ``tpu``.
        devices: explicit device list for ``mirrored`` (e.g. two logical CPUs in tests).
    """
    if name == "auto":
        if _cluster_size() > 1:
            name = "multi_worker"
        elif tf.config.list_logical_devices("TPU"):
            name = "tpu"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy(), "default"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices), "mirrored"
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("--strategy multi_worker needs TF_CONFIG describing the cluster "
                            "(see README, 'Scaling out')")
        return tf.distribute.MultiWorkerMirroredStrategy(), "multi_worker"
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver), "tpu"
    raise UserError(f"unknown strategy {name!r}")


def is_chief(strategy):
    """True on the worker that writes checkpoints, logs and exports."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type in ("chief",):
        return True
    # Without an explicit chief, worker 0 is the chief (TF's convention).
    spec = resolver.cluster_spec().as_dict()
    return "chief" not in spec and resolver.task_type == "worker" and resolver.task_id == 0
