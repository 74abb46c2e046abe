"""Building blocks of the benchmark classifiers: residual blocks and CBAM attention.

- ``BasicResidualBlock``: two 3x3 convolutions (ResNet-18/34; He et al. 2016).
- ``BottleneckResidualBlock``: 1x1 -> 3x3 -> 1x1 (x4 channels) (ResNet-50), optionally with
  CBAM on its residual branch.
- ``ConvolutionalBlockAttention`` (CBAM, Woo et al. 2018): ``ChannelAttention`` then
  ``SpatialAttention``, each multiplying the feature map by a sigmoid gate.

Every layer is registered for Keras serialisation with a complete ``get_config``. Sub-layers
whose size depends on the input are created in ``build`` and built there, so a reloaded model
has all its variables before the weights are restored.
"""
from __future__ import annotations

import keras
from keras import layers, ops

# torchvision-style batch norm: the running statistics follow the data within a few hundred
# steps (Keras's default momentum 0.99 is slow for the short CPU benchmark runs).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def same_conv(filters, kernel_size, strides=1, name=None):
    """Bias-free "same"-padded convolution (a batch norm follows, whose offset replaces it)."""
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)


def batch_norm(name=None):
    return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class ChannelAttention(layers.Layer):
    """CBAM's channel gate: which feature maps matter.

    The average- and max-pooled channel descriptors (``[N, C]`` each) go through one shared
    MLP ``C -> C/r -> C`` (ReLU in between); the two outputs are summed and squashed by a
    sigmoid into one weight per channel, which scales the input.
    """

    def __init__(self, reduction_ratio: int = 16, **kwargs):
        super().__init__(**kwargs)
        if reduction_ratio < 1:
            raise ValueError(f"reduction_ratio must be >= 1, got {reduction_ratio}")
        self.reduction_ratio = int(reduction_ratio)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # Narrow (width-multiplied) networks can have fewer channels than the ratio.
        hidden = max(1, channels // self.reduction_ratio)
        self.squeeze = layers.Dense(hidden, activation="relu", name="squeeze")
        self.excite = layers.Dense(channels, name="excite")
        self.squeeze.build((None, channels))
        self.excite.build((None, hidden))
        super().build(input_shape)

    def attention_weights(self, inputs):
        """Per-channel weights in (0, 1), shape ``[N, 1, 1, C]``."""
        if not self.built:  # called directly rather than through __call__
            self.build(ops.shape(inputs))
        average = ops.mean(inputs, axis=(1, 2))  # [N, C]
        maximum = ops.max(inputs, axis=(1, 2))  # [N, C]
        logits = self.excite(self.squeeze(average)) + self.excite(self.squeeze(maximum))
        return ops.sigmoid(logits)[:, None, None, :]

    def call(self, inputs):
        return inputs * self.attention_weights(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio)
        return config


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class SpatialAttention(layers.Layer):
    """CBAM's spatial gate: where in the map to look.

    The channel-wise mean and max (``[N, H, W, 2]``) go through one ``k x k`` convolution to a
    single map, and a sigmoid turns it into a weight per position that scales every channel.
    (The paper's equation has no normalisation after the convolution; its released code adds a
    batch norm. We follow the equation.)
    """

    def __init__(self, kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.conv = layers.Conv2D(1, self.kernel_size, padding="same", name="conv")

    def build(self, input_shape):
        self.conv.build((*input_shape[:-1], 2))
        super().build(input_shape)

    def attention_map(self, inputs):
        """Per-position weights in (0, 1), shape ``[N, H, W, 1]``."""
        if not self.built:
            self.build(ops.shape(inputs))
        descriptor = ops.concatenate(
            [ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )  # [N, H, W, 2]
        return ops.sigmoid(self.conv(descriptor))

    def call(self, inputs):
        return inputs * self.attention_map(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.kernel_size)
        return config


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class ConvolutionalBlockAttention(layers.Layer):
    """CBAM (Woo et al. 2018): channel attention, then spatial attention, applied in sequence."""

    def __init__(self, reduction_ratio: int = 16, spatial_kernel_size: int = 7, **kwargs):
        super().__init__(**kwargs)
        self.reduction_ratio = int(reduction_ratio)
        self.spatial_kernel_size = int(spatial_kernel_size)
        self.channel_attention = ChannelAttention(self.reduction_ratio, name="channel")
        self.spatial_attention = SpatialAttention(self.spatial_kernel_size, name="spatial")

    def build(self, input_shape):
        self.channel_attention.build(input_shape)
        self.spatial_attention.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        return self.spatial_attention(self.channel_attention(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(reduction_ratio=self.reduction_ratio,
                      spatial_kernel_size=self.spatial_kernel_size)
        return config


class _ResidualBlock(layers.Layer):
    """Shared shortcut logic: identity, or a strided 1x1 projection (+BN) when the block changes
    the resolution or the width ("option B" of He et al.)."""

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        self.projection = None
        self.projection_norm = None

    @property
    def output_channels(self) -> int:
        raise NotImplementedError

    def _build_shortcut(self, input_shape):
        if self.strides != 1 or int(input_shape[-1]) != self.output_channels:
            self.projection = same_conv(self.output_channels, 1, self.strides,
                                        name="projection")
            self.projection_norm = batch_norm(name="projection_bn")
            self.projection.build(input_shape)
            self.projection_norm.build(self.projection.compute_output_shape(input_shape))

    def _shortcut(self, inputs, training):
        if self.projection is None:
            return inputs
        return self.projection_norm(self.projection(inputs), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class BasicResidualBlock(_ResidualBlock):
    """``relu(x' + BN(conv3x3(relu(BN(conv3x3_s(x))))))``: ResNet-18/34's block."""

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(filters, strides, **kwargs)
        self.conv1 = same_conv(self.filters, 3, self.strides, name="conv1")
        self.norm1 = batch_norm(name="bn1")
        self.conv2 = same_conv(self.filters, 3, name="conv2")
        self.norm2 = batch_norm(name="bn2")

    @property
    def output_channels(self) -> int:
        return self.filters

    def build(self, input_shape):
        shape = self.conv1.compute_output_shape(input_shape)
        self.conv1.build(input_shape)
        self.norm1.build(shape)
        self.conv2.build(shape)
        self.norm2.build(shape)
        self._build_shortcut(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = ops.relu(self.norm1(self.conv1(inputs), training=training))
        x = self.norm2(self.conv2(x), training=training)
        return ops.relu(x + self._shortcut(inputs, training))


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class BottleneckResidualBlock(_ResidualBlock):
    """ResNet-50's block: 1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand to
    ``expansion * filters``, with CBAM on the residual branch before the addition when
    ``attention=True`` (as in Woo et al., Fig. 3).

    The stride sits on the 3x3 convolution ("ResNet v1.5", as in torchvision), which keeps more
    information than striding the first 1x1.
    """

    def __init__(self, filters: int, strides: int = 1, expansion: int = 4,
                 attention: bool = False, reduction_ratio: int = 16,
                 spatial_kernel_size: int = 7, **kwargs):
        super().__init__(filters, strides, **kwargs)
        self.expansion = int(expansion)
        self.use_attention = bool(attention)
        self.reduction_ratio = int(reduction_ratio)
        self.spatial_kernel_size = int(spatial_kernel_size)
        self.conv1 = same_conv(self.filters, 1, name="conv1")
        self.norm1 = batch_norm(name="bn1")
        self.conv2 = same_conv(self.filters, 3, self.strides, name="conv2")
        self.norm2 = batch_norm(name="bn2")
        self.conv3 = same_conv(self.output_channels, 1, name="conv3")
        self.norm3 = batch_norm(name="bn3")
        self.attention = (ConvolutionalBlockAttention(self.reduction_ratio,
                                                      self.spatial_kernel_size, name="cbam")
                          if self.use_attention else None)

    @property
    def output_channels(self) -> int:
        return self.filters * self.expansion

    def build(self, input_shape):
        self.conv1.build(input_shape)
        shape1 = self.conv1.compute_output_shape(input_shape)
        self.norm1.build(shape1)
        self.conv2.build(shape1)
        shape2 = self.conv2.compute_output_shape(shape1)
        self.norm2.build(shape2)
        self.conv3.build(shape2)
        shape3 = self.conv3.compute_output_shape(shape2)
        self.norm3.build(shape3)
        if self.attention is not None:
            self.attention.build(shape3)
        self._build_shortcut(input_shape)
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = ops.relu(self.norm1(self.conv1(inputs), training=training))
        x = ops.relu(self.norm2(self.conv2(x), training=training))
        x = self.norm3(self.conv3(x), training=training)
        if self.attention is not None:
            x = self.attention(x)
        return ops.relu(x + self._shortcut(inputs, training))

    def get_config(self):
        config = super().get_config()
        config.update(expansion=self.expansion, attention=self.use_attention,
                      reduction_ratio=self.reduction_ratio,
                      spatial_kernel_size=self.spatial_kernel_size)
        return config
