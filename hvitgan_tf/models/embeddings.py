"""Learned position embeddings, the discriminator's multi-scale patch embedding and its class and
source tokens (docs/method.md §2, §3)."""
import keras
from keras import ops

from hvitgan_tf.models.linear import linear, truncated_normal


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class PositionEmbedding(keras.layers.Layer):
    """Adds one learned vector per token position: ``[B, n, C] -> [B, n, C]``.

    Every generator stage gets a fresh one after its upsample, and each patch scale of the
    discriminator has its own (docs/method.md §2, §3): the grids differ, so the positions do too.
    """

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]), initializer=truncated_normal(),
            name="embedding")

    def call(self, tokens):
        return tokens + self.embedding  # [1, n, C] broadcast over the batch

    def compute_output_shape(self, input_shape):
        return input_shape


def image_to_patches(images, patch_size):
    """``[B, S, S, 3]`` -> ``[B, (S/p)^2, p*p*3]``: non-overlapping patches, row-major, flattened.

    A reshape and one transpose: no arithmetic, and differentiable to any order (the gradient
    penalty differentiates the discriminator twice, docs/method.md §4).
    """
    size, channels = images.shape[1], images.shape[3]
    p = patch_size
    n = size // p
    # [B, patch row, row in patch, patch col, col in patch, 3]
    x = ops.reshape(images, (-1, n, p, n, p, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, patch row, patch col, row in p, col in p, 3]
    return ops.reshape(x, (-1, n * n, p * p * channels))  # [B, (S/p)^2, p*p*3]


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class MultiScalePatchEmbedding(keras.layers.Layer):
    """The discriminator's input (docs/method.md §3.1): patches of ``p``, ``2p`` and ``4p`` pixels,
    each scale with its own linear embedding and position embedding.

    ``images [B, S, S, 3] -> [tokens_p [B, (S/p)^2, widths[0]], tokens_2p [B, (S/2p)^2, widths[1]],
    tokens_4p [B, (S/4p)^2, widths[2]]]``. The coarser scales are consumed by the later stages,
    whose grids (after 2x2 pooling) match them.
    """

    def __init__(self, patch_size, widths, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.widths = tuple(int(w) for w in widths)
        self.patch_sizes = tuple(self.patch_size * 2 ** k for k in range(len(self.widths)))
        self.projections = [linear(w, name=f"patch{p}_projection")
                            for p, w in zip(self.patch_sizes, self.widths)]
        self.position_embeddings = [PositionEmbedding(name=f"patch{p}_position")
                                    for p in self.patch_sizes]

    def build(self, input_shape):
        size, channels = input_shape[1], input_shape[3]
        for p, width, projection, position in zip(
                self.patch_sizes, self.widths, self.projections, self.position_embeddings):
            if size % p:
                raise ValueError(f"{self.name}: image size {size} is not a multiple of the "
                                 f"patch size {p}")
            n = (size // p) ** 2
            projection.build((None, n, p * p * channels))
            position.build((None, n, width))

    def call(self, images):
        return [position(projection(image_to_patches(images, p)))
                for p, projection, position in zip(
                    self.patch_sizes, self.projections, self.position_embeddings)]

    def compute_output_shape(self, input_shape):
        size = input_shape[1]
        return [(input_shape[0], (size // p) ** 2, w)
                for p, w in zip(self.patch_sizes, self.widths)]

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size,
                "widths": list(self.widths)}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class ClassAndSourceTokens(keras.layers.Layer):
    """Prepends a learned class token and a learned source token (docs/method.md §3.3).

    ``[B, n, C] -> [B, 2 + n, C]``; index :data:`CLASS` feeds the class head (and is the
    discriminator's feature vector), index :data:`SOURCE` the critic (source) head.
    """

    CLASS = 0
    SOURCE = 1

    def build(self, input_shape):
        self.tokens = self.add_weight(shape=(1, 2, input_shape[-1]),
                                      initializer=truncated_normal(), name="tokens")

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        # [1, 2, C] -> [B, 2, C], dynamic batch size.
        learned = ops.broadcast_to(ops.cast(self.tokens, tokens.dtype),
                                   (batch, 2, tokens.shape[-1]))
        return ops.concatenate([learned, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[1] is None else input_shape[1] + 2
        return (input_shape[0], n, input_shape[2])
