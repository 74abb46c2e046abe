"""The training input: an endless, seeded stream of ``[batch, n_critic, H, W, 3]`` batches.

The stream is a pure function of (dataset, seed, batch size, n_critic): iteration ``k`` always
sees the same images. That is what makes resuming exact: a run restarted at iteration ``k`` skips
``k`` batches and continues as if it had never stopped.

Under ``tf.distribute`` every input pipeline builds the same global stream and keeps only its own
replicas' consecutive rows of each global batch, so replica ``r`` holds rows
``[r * b, (r + 1) * b)`` of what one device would see (``hvitgan_tf.training.gan`` relies on it).
"""
import tensorflow as tf


def steps_per_epoch(num_examples, batch_size, n_critic):
    """Iterations in one pass over the training split (at least one)."""
    return max(1, num_examples // (batch_size * n_critic))


def training_examples(source, image_size, seed):
    """The endless, seeded example stream of the training split (pass ``e`` ordered by
    ``(seed, e)``, independent of how many iterators are opened on it)."""
    return source.examples("train", image_size, shuffle=True, seed=seed, repeat=True)


def make_training_stream(strategy, examples, *, batch_size, n_critic, start_iteration=0):
    """A distributed dataset for ``strategy`` that starts at iteration ``start_iteration``.

    Args:
        examples: endless unbatched ``(image [H,W,3] float32, label int32)`` stream in a
            deterministic order (``training_examples``).
        batch_size: global images per critic step; must be divisible by the replica count.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch size {batch_size} must be divisible by the {replicas} replicas in sync"
        )
    local_batch = batch_size // replicas

    def replica_pipeline(input_context):
        # Group n_critic consecutive examples first so the batch axis can be split by replicas:
        # [n_critic, H, W, 3] -> [local_batch, n_critic, H, W, 3]; `replicas` consecutive
        # chunks form one global batch.
        chunks = examples.batch(n_critic, drop_remainder=True)
        chunks = chunks.batch(local_batch, drop_remainder=True)
        chunks = chunks.skip(start_iteration * replicas)
        pipelines = input_context.num_input_pipelines
        if pipelines > 1:
            # Pipeline p serves replicas [p * per, (p + 1) * per) of every global batch.
            per = replicas // pipelines
            first = input_context.input_pipeline_id * per
            chunks = chunks.enumerate().filter(
                lambda i, _: tf.logical_and(i % replicas >= first, i % replicas < first + per)
            ).map(lambda _, chunk: chunk)
        options = tf.data.Options()
        # Sharding is done above; tf.distribute must not shard again.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        return chunks.with_options(options).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(replica_pipeline)
