"""The HViTGAN generator (docs/method.md §2): ``G([z, labels]) -> images [N, S, S, 3]`` in ``[-1,
1]``.

Data flow (``H0 = S / 16``, widths for the pcam96 preset in brackets)::

    concat(z, one_hot(y)) -Dense-> H0 x H0 tokens [1024] + position embedding
    stage 1: class projection -> bicubic x2          -> position emb. -> global encoders   [1024]
    stage 2: class projection -> pixel shuffle x2    -> position emb. -> global encoders   [256]
    stage 3: class projection -> pixel shuffle x2    -> position emb. -> window encoders   [64]
    stage 4: class projection -> pixel shuffle x2    -> position emb. -> window encoders   [16]
    per-token Dense -> 3, tanh, reshape to S x S x 3

With ``rgb_skips`` every stage has its own per-token Dense -> 3; the image of each stage is
upsampled bicubically to the next stage's grid and added to that stage's, so the coarse stages
paint smooth colour fields and the fine ones add detail; the tanh comes after the sum.

Two options that are not in the paper (both off in ``pcam96``; on in ``small`` except on the
``glyphs`` data, see ``PRESET_DATA_CHANGES``): with
``shuffle_blur`` each pixel shuffle smooths the grid it makes with a fixed ``[1, 2, 1]`` filter,
and with ``spatial_noise`` a stage adds to its upsampled tokens a noise map, one value per token
made from the stage's noise chunk, times a learned per-channel strength.

The class projection of stage ``k`` is a conditional layer norm driven by
``e_k = concat(z_k, class_embedding(y))`` with ``z`` split into four chunks (skip-z); with
``class_projection=False`` it is a plain LayerNorm. Which attention each stage uses, and every
other number, comes from :class:`~hvitgan_tf.models.config.GeneratorConfig`.
"""
import dataclasses

import keras
import numpy as np
from keras import ops

from hvitgan_tf.models.config import NUM_STAGES, GeneratorConfig
from hvitgan_tf.models.embeddings import PositionEmbedding
from hvitgan_tf.models.linear import linear
from hvitgan_tf.models.normalization import ConditionalLayerNorm, LayerNorm
from hvitgan_tf.models.resampling import BicubicUpsample, PixelShuffleUpsample
from hvitgan_tf.models.transformer import TransformerEncoder

UPSAMPLERS = {"bicubic": BicubicUpsample, "pixel_shuffle": PixelShuffleUpsample}


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class GeneratorStage(keras.layers.Layer):
    """One generator stage: class projection -> x2 upsample -> position embedding -> encoders.

    Input: ``[tokens [B, g*g, C], condition [B, e_dim]]`` when ``class_projection`` is on (the
    condition drives the conditional layer norm and starts with the stage's noise chunk);
    without it, ``[tokens, noise chunk [B, noise_dim]]`` when the stage has a noise map
    (``noise_scale > 0``), else just ``tokens``. Output: ``[B, 4*g*g, C]`` after bicubic
    upsampling, ``[B, 4*g*g, C/4]`` after pixel shuffle.
    """

    def __init__(self, upsample, depth, num_heads, window_size=None, mlp_ratio=4.0,
                 epsilon=1e-6, class_projection=True, width=None, center_tokens=False,
                 shuffle_blur=False, noise_scale=0.0, noise_dim=0, **kwargs):
        super().__init__(**kwargs)
        if upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {sorted(UPSAMPLERS)}, got {upsample!r}")
        self.upsample_mode = upsample
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.window_size = None if window_size is None else int(window_size)
        self.mlp_ratio = float(mlp_ratio)
        self.epsilon = float(epsilon)
        self.class_projection = bool(class_projection)
        # Output width; None keeps what the upsampler gives (docs/method.md §2.2).
        self.width = None if width is None else int(width)
        # Every LayerNorm of the stage first subtracts each image's mean token
        # (GeneratorConfig.center_tokens).
        self.center_tokens = bool(center_tokens)
        # GeneratorConfig.shuffle_blur: a pixel shuffle smooths the grid it makes.
        self.shuffle_blur = bool(shuffle_blur)
        # GeneratorConfig.spatial_noise: the starting strength of a noise map added to the
        # upsampled tokens (0: none), made from the stage's noise chunk: the first
        # ``noise_dim`` entries of the second input.
        self.noise_scale = float(noise_scale)
        self.noise_dim = int(noise_dim)
        if self.noise_scale and self.noise_dim < 1:
            raise ValueError(f"a noise map (noise_scale={self.noise_scale}) needs noise_dim >= "
                             f"1, got {self.noise_dim}")
        self.noise_projection = None  # [noise_dim, tokens] constant, set in build()
        self.noise_strength = None  # per-channel weight, set in build()
        self.expand = None  # Dense to 4 * width before a pixel shuffle, when one is needed
        self.norm = (ConditionalLayerNorm(self.epsilon, self.center_tokens,
                                          name="class_projection")
                     if self.class_projection
                     else LayerNorm(self.epsilon, self.center_tokens, name="norm"))
        blur = {"blur": self.shuffle_blur} if upsample == "pixel_shuffle" else {}
        self.upsample = UPSAMPLERS[upsample](name="upsample", **blur)
        self.position_embedding = PositionEmbedding(name="position_embedding")
        self.encoders = [
            TransformerEncoder(self.num_heads, self.mlp_ratio, self.window_size, self.epsilon,
                               center_tokens=self.center_tokens, name=f"encoder_{i}")
            for i in range(self.depth)
        ]

    @property
    def takes_second_input(self):
        """Whether the stage is called as ``[tokens, condition or noise chunk]``."""
        return self.class_projection or bool(self.noise_scale)

    def build(self, input_shape):
        incoming = input_shape[0] if self.takes_second_input else input_shape
        self.norm.build(input_shape if self.class_projection else incoming)
        tokens_shape = self._expanded_shape(incoming)
        if tokens_shape[-1] != incoming[-1]:
            # Fan-in scaled (std 1/sqrt(C_in)), so the expanded tokens keep the unit scale of
            # the normalised ones; the transformer's 0.02 would shrink them several times.
            self.expand = keras.layers.Dense(
                tokens_shape[-1], kernel_initializer=keras.initializers.TruncatedNormal(
                    stddev=incoming[-1] ** -0.5), bias_initializer="zeros", name="expand")
            self.expand.build(incoming)
        self.upsample.build(tokens_shape)
        upsampled = self.upsample.compute_output_shape(tokens_shape)
        self.position_embedding.build(upsampled)
        if self.noise_scale:
            self.noise_projection = spatial_noise_projection(self.noise_dim, upsampled[1])
            # Alternating signs: the LayerNorms in front of the encoders' attention and MLP,
            # and the next stage's, subtract each token's mean over channels; a map added to
            # all channels alike would reach only the residual path to the RGB layers.
            signs = np.where(np.arange(upsampled[2]) % 2 == 0, 1.0, -1.0)
            self.noise_strength = self.add_weight(
                shape=(upsampled[2],), name="noise_strength",
                initializer=keras.initializers.Constant(self.noise_scale * signs))
        for encoder in self.encoders:
            encoder.build(upsampled)

    def _expanded_shape(self, tokens_shape):
        """Token shape the upsampler reads: the input, or ``4 * width`` wide before a pixel
        shuffle that must produce ``width`` channels from another input width."""
        if self.width is None:
            return tuple(tokens_shape)
        wanted = self.width * (4 if self.upsample_mode == "pixel_shuffle" else 1)
        return tuple(tokens_shape[:-1]) + (wanted,)

    def call(self, inputs):
        tokens = inputs[0] if self.takes_second_input else inputs
        x = self.norm(inputs if self.class_projection else tokens)  # CLN: [tokens, condition]
        if self.expand is not None:
            x = self.expand(x)  # [B, g*g, C_in] -> [B, g*g, 4 * width]
        x = self.upsample(x)
        x = self.position_embedding(x)
        if self.noise_strength is not None:
            chunk = ops.cast(inputs[1][:, :self.noise_dim], "float32")  # [B, noise_dim]
            noise = ops.matmul(chunk, ops.convert_to_tensor(self.noise_projection))  # [B, n]
            strength = ops.cast(self.noise_strength, "float32")  # [C]
            x = x + ops.cast(noise[:, :, None] * strength, x.dtype)
        for encoder in self.encoders:
            x = encoder(x)
        return x

    def compute_output_shape(self, input_shape):
        tokens_shape = input_shape[0] if self.takes_second_input else input_shape
        return self.upsample.compute_output_shape(self._expanded_shape(tokens_shape))

    def get_config(self):
        return {
            **super().get_config(),
            "upsample": self.upsample_mode,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "window_size": self.window_size,
            "mlp_ratio": self.mlp_ratio,
            "epsilon": self.epsilon,
            "class_projection": self.class_projection,
            "width": self.width,
            "center_tokens": self.center_tokens,
            "shuffle_blur": self.shuffle_blur,
            "noise_scale": self.noise_scale,
            "noise_dim": self.noise_dim,
        }


def spatial_noise_projection(noise_dim, tokens):
    """``[noise_dim, tokens]`` float32: a fixed Gaussian matrix, scaled so that a noise chunk of
    unit-variance entries maps to one unit-variance value per token. Drawn from NumPy's legacy
    ``RandomState`` (whose stream NumPy keeps fixed across versions) seeded by ``tokens``, so it
    is the same in every process and needs no checkpoint, and the image stays a function of
    ``(z, label)``."""
    rng = np.random.RandomState(tokens)
    return (rng.standard_normal((noise_dim, tokens)) / np.sqrt(noise_dim)).astype("float32")


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class Generator(keras.Model):
    """docs/method.md §2 generator. Call as ``G([z, labels], training=False)``.

    Args (of the call): ``z`` float32 ``[N, latent_dim]``; ``labels`` integer ``[N]`` in
    ``[0, num_classes)``. Returns float32 images ``[N, S, S, 3]`` in ``[-1, 1]`` (also under a
    mixed-precision policy: the output Dense and tanh run in float32).

    Construct with :func:`build_generator`, which also creates the weights.
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = GeneratorConfig(**config)
        self.config = config
        cfg = config
        h0 = cfg.initial_grid
        self.input_projection = linear(h0 * h0 * cfg.embed_dim, name="input_projection")
        self.input_position_embedding = PositionEmbedding(name="input_position_embedding")
        # Unit-variance class vectors sit on the same scale as the noise chunks they are
        # concatenated with in e_k, so neither half of the condition dominates W_g, W_b.
        self.class_embedding = (
            keras.layers.Embedding(
                cfg.num_classes, cfg.class_embed_dim,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
                name="class_embedding")
            if cfg.class_projection else None
        )
        self.stages = [
            GeneratorStage(
                upsample=cfg.upsampling[k],
                depth=cfg.depth[k], num_heads=cfg.num_heads[k], window_size=cfg.window_size[k],
                mlp_ratio=cfg.mlp_ratio, epsilon=cfg.layer_norm_epsilon,
                class_projection=cfg.class_projection,
                width=cfg.stage_widths[k] if cfg.widths is not None else None,
                center_tokens=cfg.center_tokens, shuffle_blur=cfg.shuffle_blur,
                noise_scale=cfg.spatial_noise[k], noise_dim=cfg.noise_chunk,
                name=f"stage_{k + 1}")
            for k in range(NUM_STAGES)
        ]
        # Full precision (float32 under mixed_bfloat16): images come out float32 and the tanh
        # is not computed on bfloat16's coarse grid. Initialised like TransGAN's output
        # convolution (PyTorch's default, std 1/sqrt(3 fan_in)), not with the 0.02 of the
        # transformer layers: from a 4-channel last stage 0.02 gave images with a within-image
        # std of 0.03 (real patches: 0.2), which Adam at 1e-4 takes hundreds of steps to grow.
        last_width = cfg.stage_widths[-1]
        self.to_rgb = self._rgb_layer(last_width, "to_rgb")
        # Output skips: stage k's own RGB (k < 4) and the x2 bicubic resizes that carry the
        # running image from each stage's grid to the next.
        self.skip_rgb, self.skip_upsample = [], []
        if cfg.rgb_skips:
            self.skip_rgb = [self._rgb_layer(width, f"to_rgb_stage_{k + 1}")
                             for k, width in enumerate(cfg.stage_widths[:-1])]
            self.skip_upsample = [
                BicubicUpsample(name=f"rgb_upsample_{k + 2}", dtype=self.variable_dtype)
                for k in range(NUM_STAGES - 1)]

    def _rgb_layer(self, width, name):
        return keras.layers.Dense(
            3, kernel_initializer=keras.initializers.TruncatedNormal(
                stddev=(3.0 * width) ** -0.5),
            bias_initializer="zeros", name=name, dtype=self.variable_dtype)

    def build(self, input_shape=None):
        # Every shape follows from the config; the input shapes are only checked by the call.
        cfg = self.config
        h0 = cfg.initial_grid
        self.input_projection.build((None, cfg.latent_dim + cfg.num_classes))
        tokens = (None, h0 * h0, cfg.embed_dim)
        self.input_position_embedding.build(tokens)
        condition = (None, cfg.noise_chunk + cfg.class_embed_dim)
        if self.class_embedding is not None:
            self.class_embedding.build((None,))
        for k, stage in enumerate(self.stages):
            if cfg.class_projection:
                inputs = [tokens, condition]
            elif cfg.spatial_noise[k]:
                inputs = [tokens, (None, cfg.noise_chunk)]
            else:
                inputs = tokens
            stage.build(inputs)
            tokens = stage.compute_output_shape(inputs)
            if k < len(self.skip_rgb):
                self.skip_rgb[k].build(tokens)
                self.skip_upsample[k].build(tokens[:-1] + (3,))
        self.to_rgb.build(tokens)

    def call(self, inputs, training=False):
        cfg = self.config
        z, labels = inputs
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))  # accept [N] or [N, 1]
        one_hot = ops.one_hot(labels, cfg.num_classes, dtype=z.dtype)
        h0 = cfg.initial_grid
        x = self.input_projection(ops.concatenate([z, one_hot], axis=-1))  # [N, H0*H0*C]
        x = ops.reshape(x, (-1, h0 * h0, cfg.embed_dim))  # [N, H0*H0, C], row-major grid
        x = self.input_position_embedding(x)
        noise_chunks = ops.split(z, NUM_STAGES, axis=-1)  # skip-z: 4 x [N, latent_dim/4]
        if cfg.class_projection:
            class_vector = self.class_embedding(labels)  # [N, class_embed_dim]
        image = None  # the output skips' running image, [N, g*g, 3] float32
        for k, stage in enumerate(self.stages):
            if cfg.class_projection:
                condition = ops.concatenate(
                    [noise_chunks[k], ops.cast(class_vector, z.dtype)], axis=-1)  # e_k
                x = stage([x, condition])
            elif cfg.spatial_noise[k]:
                x = stage([x, noise_chunks[k]])  # the noise map's chunk only
            else:
                x = stage(x)
            if image is not None:
                image = self.skip_upsample[k - 1](image)  # to this stage's grid
            if k < len(self.skip_rgb):
                painted = self.skip_rgb[k](x)
                image = painted if image is None else image + painted
        rgb = self.to_rgb(x)  # [N, S*S, 3], float32
        rgb = ops.tanh(rgb if image is None else rgb + image)
        size = cfg.image_size
        return ops.reshape(rgb, (-1, size, size, 3))  # [N, S, S, 3]

    def compute_output_shape(self, input_shape):
        size = self.config.image_size
        return (input_shape[0][0], size, size, 3)

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}


def build_generator(cfg: GeneratorConfig, name: str = "generator") -> Generator:
    """The generator of ``cfg``, with its weights created (call it inside a strategy scope to
    place them there)."""
    model = Generator(cfg, name=name)
    model.build([(None, cfg.latent_dim), (None,)])
    return model
