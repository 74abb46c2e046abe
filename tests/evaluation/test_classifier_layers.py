"""CBAM and residual blocks: properties that follow from their definitions."""
import keras
import numpy as np
import pytest

from hvitgan_tf.evaluation.classifier_layers import (BasicResidualBlock,
                                                     BottleneckResidualBlock, ChannelAttention,
                                                     ConvolutionalBlockAttention,
                                                     SpatialAttention)


@pytest.fixture
def feature_map():
    return np.random.default_rng(0).normal(size=(2, 6, 5, 32)).astype(np.float32)


def test_cbam_keeps_the_shape_and_gates_within_zero_and_one(feature_map):
    cbam = ConvolutionalBlockAttention(reduction_ratio=16, spatial_kernel_size=7)
    out = np.asarray(cbam(feature_map))
    assert out.shape == feature_map.shape
    channel = np.asarray(cbam.channel_attention.attention_weights(feature_map))
    assert channel.shape == (2, 1, 1, 32)
    gated = np.asarray(cbam.channel_attention(feature_map))
    spatial = np.asarray(cbam.spatial_attention.attention_map(gated))
    assert spatial.shape == (2, 6, 5, 1)
    for gate in (channel, spatial):
        assert np.all(gate > 0) and np.all(gate < 1)
    # CBAM is exactly the channel gate followed by the spatial gate.
    np.testing.assert_allclose(out, feature_map * channel * spatial, rtol=1e-5, atol=1e-6)
    assert cbam.channel_attention.squeeze.units == 32 // 16


def test_channel_attention_with_zeroed_mlp_is_a_uniform_half(feature_map):
    attention = ChannelAttention(reduction_ratio=4)
    attention.build(feature_map.shape)
    for weight in attention.weights:
        weight.assign(np.zeros(weight.shape, np.float32))
    np.testing.assert_allclose(np.asarray(attention(feature_map)), 0.5 * feature_map,
                               rtol=1e-6)


def test_channel_attention_ignores_where_things_are(feature_map):
    """Average and max pooling over positions do not see a shuffle of positions."""
    attention = ChannelAttention(reduction_ratio=8)
    n, h, w, c = feature_map.shape
    order = np.random.default_rng(1).permutation(h * w)
    shuffled = feature_map.reshape(n, h * w, c)[:, order].reshape(n, h, w, c)
    np.testing.assert_allclose(np.asarray(attention.attention_weights(shuffled)),
                               np.asarray(attention.attention_weights(feature_map)), rtol=1e-6)


def test_spatial_attention_ignores_the_channel_order(feature_map):
    """Mean and max over channels do not see a permutation of channels."""
    attention = SpatialAttention(kernel_size=7)
    order = np.random.default_rng(2).permutation(feature_map.shape[-1])
    np.testing.assert_allclose(np.asarray(attention.attention_map(feature_map[..., order])),
                               np.asarray(attention.attention_map(feature_map)), rtol=1e-6)


def test_narrow_inputs_keep_at_least_one_hidden_unit():
    attention = ChannelAttention(reduction_ratio=16)
    out = attention(np.ones((1, 3, 3, 8), np.float32))
    assert attention.squeeze.units == 1 and out.shape == (1, 3, 3, 8)


def test_residual_blocks_shapes_and_projection(feature_map):
    basic = BasicResidualBlock(32)
    assert basic(feature_map).shape == (2, 6, 5, 32)
    assert basic.projection is None  # same width and stride: identity shortcut
    strided = BasicResidualBlock(16, strides=2)
    assert strided(feature_map).shape == (2, 3, 3, 16)
    assert strided.projection is not None
    bottleneck = BottleneckResidualBlock(8, strides=2, attention=True)
    assert bottleneck(feature_map).shape == (2, 3, 3, 32)
    assert isinstance(bottleneck.attention, ConvolutionalBlockAttention)
    assert BottleneckResidualBlock(8).attention is None
    # ReLU at the end of every block.
    assert float(np.min(bottleneck(feature_map))) >= 0.0


def test_blocks_survive_a_keras_save_and_load(tmp_path, feature_map):
    inputs = keras.Input(feature_map.shape[1:])
    x = BasicResidualBlock(16, strides=2)(inputs)
    x = BottleneckResidualBlock(4, attention=True, reduction_ratio=4)(x)
    model = keras.Model(inputs, x)
    # Move the batch-norm statistics off their initial values so that loading is visible.
    for weight in model.weights:
        weight.assign(np.random.default_rng(3).uniform(0.5, 1.5, weight.shape)
                      .astype(np.float32))
    expected = np.asarray(model(feature_map, training=False))
    model.save(tmp_path / "blocks.keras")
    restored = keras.models.load_model(tmp_path / "blocks.keras")
    np.testing.assert_allclose(np.asarray(restored(feature_map, training=False)), expected,
                               rtol=1e-5)
    block = restored.layers[2]
    assert isinstance(block, BottleneckResidualBlock)
    assert block.get_config()["attention"] is True
    assert block.attention.get_config()["reduction_ratio"] == 4
