"""GeneratorConfig.center_tokens: every LayerNorm of the generator first subtracts each image's
mean token, so a vector shared by all tokens cannot swamp what the noise puts in them."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import build_generator, preset
from hvitgan_tf.models.config import ConfigError, GeneratorConfig
from hvitgan_tf.models.normalization import ConditionalLayerNorm, LayerNorm


def _tokens(seed=0, shape=(3, 16, 8)):
    return tf.random.stateless_normal(shape, (seed, 7))


def test_a_vector_shared_by_every_token_changes_nothing_once_centred():
    tokens = _tokens()
    shared = 25.0 * tf.random.stateless_normal((3, 1, 8), (1, 2))  # one vector per image
    centred, plain = LayerNorm(center_tokens=True), LayerNorm()
    centred.build(tokens.shape)
    plain.build(tokens.shape)
    np.testing.assert_allclose(centred(tokens + shared), centred(tokens), atol=1e-4)
    # The paper's per-token LayerNorm is not blind to it: the offset dominates every token.
    assert np.abs(plain(tokens + shared) - plain(tokens)).mean() > 0.5

    condition = tf.random.stateless_normal((3, 5), (3, 4))
    cln = ConditionalLayerNorm(center_tokens=True)
    cln.build([tokens.shape, condition.shape])
    np.testing.assert_allclose(cln([tokens + shared, condition]), cln([tokens, condition]),
                               atol=1e-4)


def test_centring_is_the_per_token_layer_norm_of_the_centred_tokens():
    tokens = _tokens(seed=3)
    centred, plain = LayerNorm(center_tokens=True), LayerNorm()
    centred.build(tokens.shape)
    plain.build(tokens.shape)
    mean_token = tf.reduce_mean(tokens, axis=1, keepdims=True)
    np.testing.assert_allclose(centred(tokens), plain(tokens - mean_token), atol=1e-5)


def test_the_option_reaches_every_layer_norm_of_the_generator_and_is_serialised():
    cfg = dataclasses.replace(preset("tiny", 3).generator, center_tokens=True)
    generator = build_generator(cfg)
    norms = [layer for layer in generator._flatten_layers()
             if isinstance(layer, (LayerNorm, ConditionalLayerNorm))]
    assert len(norms) == 4 * (1 + 2)  # per stage: the class projection, two per encoder block
    assert all(layer.center_tokens for layer in norms)
    assert GeneratorConfig(**dataclasses.asdict(cfg)).center_tokens is True
    restored = type(generator).from_config(generator.get_config())
    assert restored.config.center_tokens is True
    assert not any(layer.center_tokens for layer in build_generator(preset("tiny", 3).generator)
                   ._flatten_layers() if isinstance(layer, (LayerNorm, ConditionalLayerNorm)))
    with pytest.raises(ConfigError, match="center_tokens"):
        dataclasses.replace(cfg, center_tokens="yes")


def _noise_effect(generator):
    """Mean |G(z1, y) - G(z2, y)| over a batch of label-matched pairs."""
    z = tf.random.stateless_normal((8, generator.config.latent_dim), (5, 1))
    labels = tf.constant([0, 1] * 4, tf.int32)
    first = generator([z, labels], training=False)
    second = generator([tf.roll(z, 2, axis=0), labels], training=False)
    return float(tf.reduce_mean(tf.abs(first - second)))


@pytest.mark.parametrize("center", [False, True])
def test_a_large_shared_offset_in_stage_one_no_longer_erases_the_noise(center):
    """What training did to the paper's generator (docs/method.md §11.10): within about a hundred
    iterations the MLPs of stage 1 learned an output shared by every token and every image,
    several times the size of what the noise puts there, and the LayerNorms after it made all
    noises give one image. The same offset planted by hand does that to the per-token
    LayerNorm, and nothing to the centred one."""
    # Without output skips: the skip of stage 1 reads its tokens directly, so there a shared
    # offset is a colour shift (a bias of that Dense), not a division of the noise.
    # Without noise maps too: they add noise after stage 1, past the LayerNorms in question.
    cfg = dataclasses.replace(preset("small", 2).generator, center_tokens=center,
                              rgb_skips=False, spatial_noise=0.0)
    generator = build_generator(cfg)
    before = _noise_effect(generator)
    mlp_output = generator.stages[0].encoders[-1].mlp_output
    offset = 8.0 * tf.random.stateless_normal(mlp_output.bias.shape, (9, 9))
    mlp_output.bias.assign(mlp_output.bias + offset)
    after = _noise_effect(generator)
    if center:
        assert after == pytest.approx(before, rel=1e-3)
    else:
        assert after < 0.3 * before
