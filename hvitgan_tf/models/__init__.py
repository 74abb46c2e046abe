"""HViTGAN networks (docs/method.md §2, §3) and their configuration.

    from hvitgan_tf.models import build_generator, build_discriminator, preset
    cfg = preset("small", num_classes=2)
    G = build_generator(cfg.generator)            # G([z, labels]) -> images [N, S, S, 3]
    D = build_discriminator(cfg.discriminator)    # D(images) -> (source [N, 1], logits [N, C])
    features = D.features(images)                 # [N, embed_dim], for domain FID

The configuration names (``ModelConfig``, ``preset``, ...) import without TensorFlow; the network
builders and layers import Keras on first use, so the CLI's ``--help`` stays fast.
"""
import importlib

from hvitgan_tf.models.config import (
    PRESETS,
    ConfigError,
    DiscriminatorConfig,
    GeneratorConfig,
    ModelConfig,
    preset,
)

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "build_generator": "generator",
    "Generator": "generator",
    "GeneratorStage": "generator",
    "build_discriminator": "discriminator",
    "Discriminator": "discriminator",
    "DiscriminatorStage": "discriminator",
    "TransformerEncoder": "transformer",
    "MultiHeadSelfAttention": "transformer",
    "window_partition": "transformer",
    "window_reverse": "transformer",
    "ConditionalLayerNorm": "normalization",
    "LayerNorm": "normalization",
    "PositionEmbedding": "embeddings",
    "MultiScalePatchEmbedding": "embeddings",
    "ClassAndSourceTokens": "embeddings",
    "BicubicUpsample": "resampling",
    "PixelShuffleUpsample": "resampling",
    "TokenAveragePool": "resampling",
    "describe_model": "summary",
}

__all__ = ["PRESETS", "ConfigError", "DiscriminatorConfig", "GeneratorConfig", "ModelConfig",
           "preset", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
