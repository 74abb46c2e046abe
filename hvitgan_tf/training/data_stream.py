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


def _global_stream(examples, num_examples, n_critic, seed):
    # Reshuffled every pass with a fixed seed: pass e's order is the same on every run.
    buffer = max(1, min(num_examples, 20_000))
    stream = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    # Group n_critic consecutive examples first so the batch axis can be split by replicas.
    return stream.batch(n_critic, drop_remainder=True)  # [n_critic, H, W, 3], [n_critic]


def make_training_stream(strategy, examples, num_examples, *, batch_size, n_critic, seed,
                         start_iteration=0):
    """A distributed dataset for ``strategy`` that starts at iteration ``start_iteration``.

    Args:
        examples: unbatched ``(image [H,W,3] float32, label int32)`` dataset, deterministic order.
        batch_size: global images per critic step; must be divisible by the replica count.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch size {batch_size} must be divisible by the {replicas} replicas in sync"
        )
    local_batch = batch_size // replicas

    def replica_pipeline(input_context):
        chunks = _global_stream(examples, num_examples, n_critic, seed)
        # [local_batch, n_critic, H, W, 3]; `replicas` consecutive chunks form one global batch.
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
