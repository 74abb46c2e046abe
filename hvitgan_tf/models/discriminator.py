"""The HViTGAN discriminator (docs/method.md §3): ``D(images) -> (source [N, 1], class_logits [N,
C])``.

Data flow (pcam96 preset: S = 96, p = 4, D = 384)::

    images -> patches of p, 2p, 4p, each linearly embedded + own position embedding
              tokens_p [24x24, 192]   tokens_2p [12x12, 96]   tokens_4p [6x6, 96]
    stage 1: encoders on tokens_p                         [24x24, 192] -> 2x2 avg pool
    stage 2: concat(pooled, tokens_2p) along channels -> encoders  [12x12, 288] -> pool
    stage 3: concat(pooled, tokens_4p) -> encoders                 [6x6, 384]   -> pool
    stage 4: prepend class + source tokens -> encoders -> LayerNorm  [2 + 3x3, 384]
             class head (Dense -> C) on the class token, source head (Dense -> 1) on the
             source token; no sigmoid (a WGAN critic).

Feature extractor (domain FID, docs/method.md §9): :meth:`Discriminator.features` returns the class
token after the final LayerNorm, the vector the class head reads.
"""
import dataclasses

import keras
from keras import ops

from hvitgan_tf.models.config import NUM_STAGES, DiscriminatorConfig
from hvitgan_tf.models.embeddings import ClassAndSourceTokens, MultiScalePatchEmbedding
from hvitgan_tf.models.linear import linear
from hvitgan_tf.models.normalization import LayerNorm
from hvitgan_tf.models.resampling import TokenAveragePool
from hvitgan_tf.models.transformer import TransformerEncoder


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class DiscriminatorStage(keras.layers.Layer):
    """``depth`` encoders over ``[B, n, C]`` tokens, then (stages 1-3) a 2x2 average pool."""

    def __init__(self, depth, num_heads, window_size=None, mlp_ratio=4.0, epsilon=1e-6,
                 pool=True, **kwargs):
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.window_size = None if window_size is None else int(window_size)
        self.mlp_ratio = float(mlp_ratio)
        self.epsilon = float(epsilon)
        self.pool = bool(pool)
        self.encoders = [
            TransformerEncoder(self.num_heads, self.mlp_ratio, self.window_size, self.epsilon,
                               name=f"encoder_{i}")
            for i in range(self.depth)
        ]
        self.pooling = TokenAveragePool(name="pool") if self.pool else None

    def build(self, input_shape):
        for encoder in self.encoders:
            encoder.build(input_shape)
        if self.pooling is not None:
            self.pooling.build(input_shape)

    def call(self, tokens):
        for encoder in self.encoders:
            tokens = encoder(tokens)
        return tokens if self.pooling is None else self.pooling(tokens)

    def compute_output_shape(self, input_shape):
        if self.pooling is None:
            return input_shape
        return self.pooling.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "mlp_ratio": self.mlp_ratio,
            "epsilon": self.epsilon,
            "pool": self.pool,
        }


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class MinibatchStd(keras.layers.Layer):
    """``[N, D]`` features -> ``[N, 1]``: a learned scale (starting at 0) times the mean over
    channels of the features' standard deviation within each group of ``group`` consecutive
    images (ProGAN's minibatch standard deviation, on the critic's features).

    The group is the largest divisor of ``group`` that divides the batch, so any batch size
    works (a batch of one gives a spread of 0). Training puts real and fake images in separate
    halves of one batch whose local size is a multiple of ``group``, so no group mixes them.
    Differentiable to second order (the gradient penalty differentiates it twice).
    """

    def __init__(self, group, **kwargs):
        super().__init__(**kwargs)
        self.group = int(group)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="zeros", name="scale")

    def call(self, features):
        batch = ops.shape(features)[0]
        group = ops.convert_to_tensor(1, "int32")
        for d in range(2, self.group + 1):
            if self.group % d == 0:
                group = ops.where(batch % d == 0, d, group)
        width = features.shape[-1]
        grouped = ops.reshape(features, (-1, group, width))  # [N / g, g, D]
        centred = grouped - ops.mean(grouped, axis=1, keepdims=True)
        spread = ops.sqrt(ops.mean(ops.square(centred), axis=1) + 1e-8)  # [N / g, D]
        per_group = ops.mean(spread, axis=-1, keepdims=True)  # [N / g, 1]
        per_image = ops.repeat(per_group, group, axis=0)  # [N, 1], group order kept
        return self.scale * per_image

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "group": self.group}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class Discriminator(keras.Model):
    """docs/method.md §3 discriminator. ``D(images, training=False) -> (source [N, 1], logits [N,
    C])``.

    ``images`` float ``[N, S, S, 3]`` in ``[-1, 1]``. Both outputs are float32 raw scores (no
    sigmoid / softmax), also under a mixed-precision policy: the final LayerNorm and both heads
    run in float32. Penultimate class-token features, ``[N, embed_dim]`` float32:
    ``D.features(images)``, or ``D(images, return_features=True) -> (source, logits, features)``
    when the scores are wanted too (one pass instead of two). Construct with
    :func:`build_discriminator`, which also creates the weights.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = DiscriminatorConfig(**config)
        self.config = config
        cfg = config
        self.patch_embedding = MultiScalePatchEmbedding(
            cfg.patch_size, cfg.scale_widths, name="patch_embedding")
        self.stages = [
            DiscriminatorStage(
                cfg.depth[k], cfg.num_heads[k], cfg.window_size[k], cfg.mlp_ratio,
                cfg.layer_norm_epsilon, pool=k < NUM_STAGES - 1, name=f"stage_{k + 1}")
            for k in range(NUM_STAGES)
        ]
        self.class_and_source_tokens = ClassAndSourceTokens(name="class_and_source_tokens")
        # Full precision (the policy's variable dtype: float32 under mixed_bfloat16) from here on:
        # the features and both scores are float32, and the critic score feeds the gradient
        # penalty (docs/keras3-notes.md §2.8). Only 2 + (S/8p)^2 tokens: cheap.
        full = self.variable_dtype
        self.final_norm = LayerNorm(cfg.layer_norm_epsilon, name="final_norm", dtype=full)
        self.class_head = linear(cfg.num_classes, name="class_head", dtype=full)
        self.source_head = linear(1, name="source_head", dtype=full)
        self.minibatch_std = (MinibatchStd(cfg.minibatch_std_group, name="minibatch_std",
                                           dtype=full)
                              if cfg.minibatch_std_group else None)

    def build(self, input_shape=None):
        cfg = self.config
        self.patch_embedding.build((None, cfg.image_size, cfg.image_size, 3))
        scale_shapes = self.patch_embedding.compute_output_shape(
            (None, cfg.image_size, cfg.image_size, 3))
        tokens = scale_shapes[0]
        for k, stage in enumerate(self.stages):
            if 0 < k < len(scale_shapes):  # stages 2, 3 take in the next scale's channels
                tokens = (None, tokens[1], tokens[2] + scale_shapes[k][2])
            if k == NUM_STAGES - 1:
                self.class_and_source_tokens.build(tokens)
                tokens = self.class_and_source_tokens.compute_output_shape(tokens)
            stage.build(tokens)
            tokens = stage.compute_output_shape(tokens)
        self.final_norm.build(tokens)
        self.class_head.build((None, tokens[2]))
        self.source_head.build((None, tokens[2]))
        if self.minibatch_std is not None:
            self.minibatch_std.build((None, tokens[2]))

    def encode(self, images, training=False):
        """All tokens after the final LayerNorm: ``[N, 2 + n, embed_dim]`` float32, with the
        class token at index 0 and the source token at index 1."""
        scales = self.patch_embedding(images)  # [N, (S/p)^2, w0], [N, (S/2p)^2, w1], ...
        x = scales[0]
        for k, stage in enumerate(self.stages):
            if 0 < k < len(scales):
                # Grids match: (S/p)/2^k after k poolings == S/(2^k p). Channels: w0 + ... + wk.
                x = ops.concatenate([x, ops.cast(scales[k], x.dtype)], axis=-1)
            if k == NUM_STAGES - 1:
                x = self.class_and_source_tokens(x)  # [N, 2 + n, D]
            x = stage(x)
        return self.final_norm(x)

    def call(self, images, training=False, return_features=False):
        tokens = self.encode(images, training=training)
        features = tokens[:, ClassAndSourceTokens.CLASS]  # [N, D]
        source_features = tokens[:, ClassAndSourceTokens.SOURCE]  # [N, D]
        source = self.source_head(source_features)  # [N, 1]
        if self.minibatch_std is not None:  # the critic score only: logits stay per image
            source = source + self.minibatch_std(source_features)
        logits = self.class_head(features)  # [N, num_classes]
        if return_features:
            return source, logits, features
        return source, logits

    def features(self, images, training=False):
        """Penultimate class-token features ``[N, embed_dim]`` float32 (after the final LN, before
        the class head): the domain feature extractor for FID/KID (docs/method.md §9).

        Export: ``archive.track(D)`` and ``archive.add_endpoint("features", tf.function(
        D.features, input_signature=[tf.TensorSpec([None, S, S, 3], tf.float32)]))``; with the
        scores in the same signature, wrap ``D(images, return_features=True)`` instead.
        """
        return self.encode(images, training=training)[:, ClassAndSourceTokens.CLASS]

    def compute_output_shape(self, input_shape, return_features=False):
        batch = input_shape[0]
        scores = ((batch, 1), (batch, self.config.num_classes))
        return scores + ((batch, self.config.embed_dim),) if return_features else scores

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}


def build_discriminator(cfg: DiscriminatorConfig, name: str = "discriminator") -> Discriminator:
    """The discriminator of ``cfg``, with its weights created (call it inside a strategy scope
    to place them there)."""
    model = Discriminator(cfg, name=name)
    model.build((None, cfg.image_size, cfg.image_size, 3))
    return model
