"""The three benchmark classifiers: real architectures by default, small variants on request."""
import keras
import numpy as np
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.classifier_layers import (BasicResidualBlock,
                                                     BottleneckResidualBlock,
                                                     ConvolutionalBlockAttention)
from hvitgan_tf.evaluation.classifiers import (available_classifiers, build_classifier,
                                               register_classifier)
from hvitgan_tf.export.classifier import classifier_feature_model

TINY = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def blocks_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def check_forward(model, num_classes=2):
    probabilities = np.asarray(model(TINY, training=False))
    assert probabilities.shape == (2, num_classes)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    return probabilities


def test_resnet34_is_the_published_architecture():
    model = build_classifier("resnet34", (32, 32, 3), 2)
    check_forward(model)
    blocks = blocks_of(model, BasicResidualBlock)
    assert len(blocks) == 16
    assert [b.filters for b in blocks] == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    assert [b.strides for b in blocks].count(2) == 3
    # The ImageNet stem (7x7 stride 2, 3x3 max-pool stride 2): 32 px -> 8 px at block 1.
    assert blocks[0].input.shape[1:3] == (8, 8)
    # torchvision's resnet34 has 21,797,672 trainable parameters with a 1000-way head;
    # swapping in a 2-way head (512*2 + 2 instead of 512*1000 + 1000) leaves 21,285,698.
    assert trainable_count(model) == 21_797_672 - (512 * 1000 + 1000) + (512 * 2 + 2)
    assert classifier_feature_model(model).output_shape == (None, 512)


def test_resnet50_cbam_has_sixteen_bottlenecks_each_with_cbam():
    model = build_classifier("resnet50_cbam", (32, 32, 3), 3)
    check_forward(model, num_classes=3)
    blocks = blocks_of(model, BottleneckResidualBlock)
    assert len(blocks) == 16
    assert all(isinstance(b.attention, ConvolutionalBlockAttention) for b in blocks)
    widths = [b.output_channels for b in blocks]
    assert widths == [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    # torchvision's resnet50: 25,557,032 trainable parameters with a 1000-way head. Each CBAM
    # adds a C -> C/16 -> C MLP with biases and a 7x7 conv from 2 maps to 1 (with bias).
    cbam = sum(2 * c * (c // 16) + c // 16 + c + 7 * 7 * 2 + 1 for c in widths)
    expected = 25_557_032 - (2048 * 1000 + 1000) + (2048 * 3 + 3) + cbam
    assert trainable_count(model) == expected
    assert classifier_feature_model(model).output_shape == (None, 2048)


def test_densenet169_builds_from_keras_applications():
    model = build_classifier("densenet169", (32, 32, 3), 2)
    check_forward(model)
    backbone = model.get_layer("densenet169")
    concatenations = [layer for layer in backbone.layers if layer.name.endswith("_concat")]
    assert len(concatenations) == 6 + 12 + 32 + 32  # one per dense layer
    assert classifier_feature_model(model).output_shape == (None, 1664)
    with pytest.raises(UserError, match="ResNets only"):
        build_classifier("densenet169", (32, 32, 3), 2, width_multiplier=0.5)


def test_small_resnet_variant_keeps_the_block_structure():
    model = build_classifier("resnet34", (32, 32, 3), 2, width_multiplier=0.25,
                             small_input=True)
    check_forward(model)
    blocks = blocks_of(model, BasicResidualBlock)
    assert [b.filters for b in blocks] == [16] * 3 + [32] * 4 + [64] * 6 + [128] * 3
    # No stride-2 stem and no max-pool: the first block sees all 32 x 32 positions.
    assert blocks[0].input.shape[1:3] == (32, 32)
    assert "stem_pool" not in [layer.name for layer in model.layers]


def test_registry_errors_and_extension(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert set(available_classifiers()) >= {"resnet34", "resnet50_cbam", "densenet169"}
    with pytest.raises(UserError, match="unknown classifier 'vgg'"):
        build_classifier("vgg")
    with pytest.raises(UserError, match="no ImageNet weights for resnet34"):
        build_classifier("resnet34", pretrained=True)
    with pytest.raises(UserError) as error:
        build_classifier("densenet169", (32, 32, 3), 2, pretrained=True)
    message = str(error.value)
    assert "densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "https://storage.googleapis.com/" in message and "cannot download" in message
    with pytest.raises(UserError, match="width_multiplier"):
        build_classifier("resnet34", width_multiplier=0)

    @register_classifier("tiny_test_head")
    def tiny(input_shape, num_classes, **options):
        inputs = keras.Input(input_shape)
        features = keras.layers.GlobalAveragePooling2D(name="features")(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(
            features))

    try:
        model = build_classifier("tiny_test_head", (8, 8, 3), 4)
        assert model.output_shape == (None, 4)
    finally:
        from hvitgan_tf.evaluation import classifiers
        classifiers._BUILDERS.pop("tiny_test_head")
