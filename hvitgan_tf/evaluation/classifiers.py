"""Classifiers for the augmentation benchmark (docs/method.md §9, the paper's Table 1).

``build_classifier(name, input_shape, num_classes, ...)`` with names:

- ``resnet34``: basic blocks ``[3, 4, 6, 3]``, widths 64-128-256-512 (He et al. 2016).
- ``resnet50_cbam``: bottleneck blocks ``[3, 4, 6, 3]``, widths 64-128-256-512 (x4 out), each
  with CBAM on its residual branch (Woo et al. 2018).
- ``densenet169``: Keras's ``DenseNet169`` backbone (blocks ``[6, 12, 32, 32]``, growth 32),
  from scratch or, with ``pretrained=True``, with its ImageNet weights from a file.

Every model takes float images in ``[-1, 1]`` (the dataset format), ``[N, H, W, C]``, and
outputs class probabilities (softmax, float32) from a layer named ``probabilities``. The layer
named ``features`` is the globally average-pooled penultimate representation;
``hvitgan_tf.export.classifier`` cuts the model there (``classifier_feature_model``) for the
``features`` signature that the ``classifier:`` feature extractor reads.

The defaults are the published architectures. For minutes-long CPU runs on 32 px demo patches,
the ResNets take ``width_multiplier`` (scales every convolution's width; 0.25 gives a
16-32-64-128 ResNet) and ``small_input=True`` (a CIFAR-style stem: one stride-1 3x3 convolution
and no max-pool, instead of the 7x7 stride-2 convolution and stride-2 pool that throw away 15/16
of a 32 px image's positions before the first block). DenseNet169 comes from
``keras.applications`` with its fixed growth rate and stem, so it accepts neither option.

The registry is open: ``@register_classifier("name")`` adds a builder with the same signature
(the GAN's own class head joins the benchmark this way).
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import keras
from keras import layers

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.classifier_layers import (BasicResidualBlock,
                                                     BottleneckResidualBlock, batch_norm,
                                                     same_conv)
from hvitgan_tf.export.classifier import FEATURES_LAYER
from hvitgan_tf.metrics import imagenet_weights

#: Name of the softmax layer.
PROBABILITIES_LAYER = "probabilities"

RESNET_STAGE_WIDTHS = (64, 128, 256, 512)
RESNET_STAGE_BLOCKS = (3, 4, 6, 3)  # both ResNet-34 and ResNet-50

# ImageNet channel statistics for Keras's DenseNet weights ("torch" preprocessing mode).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_BUILDERS: Dict[str, Callable[..., keras.Model]] = {}


def register_classifier(name: str):
    """Decorator: ``builder(input_shape, num_classes, *, pretrained, weights_path,
    width_multiplier, small_input) -> keras.Model`` becomes available as ``name``."""
    def decorate(builder):
        _BUILDERS[name] = builder
        return builder
    return decorate


def available_classifiers() -> Tuple[str, ...]:
    return tuple(sorted(_BUILDERS))


def build_classifier(name: str, input_shape: Sequence[int] = (96, 96, 3), num_classes: int = 2,
                     *, pretrained: bool = False, weights_path: str | None = None,
                     width_multiplier: float = 1.0, small_input: bool = False) -> keras.Model:
    """Build the benchmark classifier ``name`` (see the module docstring).

    Args:
        input_shape: ``(H, W, C)`` of the ``[-1, 1]`` input images.
        num_classes: number of softmax outputs.
        pretrained: start from ImageNet weights (only ``densenet169``); the file comes from
            ``weights_path`` or Keras's cache, and is never downloaded.
        width_multiplier, small_input: the small ResNet variants described above.
    """
    if name not in _BUILDERS:
        raise UserError(f"unknown classifier {name!r}; choose one of "
                        f"{', '.join(available_classifiers())}")
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise UserError(f"input_shape must be (height, width, channels), got {input_shape}")
    if num_classes < 2:
        raise UserError(f"num_classes must be at least 2, got {num_classes}")
    if not width_multiplier > 0:
        raise UserError(f"width_multiplier must be > 0, got {width_multiplier}")
    return _BUILDERS[name](input_shape, int(num_classes), pretrained=bool(pretrained),
                           weights_path=weights_path, width_multiplier=float(width_multiplier),
                           small_input=bool(small_input))


def _classification_head(inputs, feature_map, num_classes: int, name: str) -> keras.Model:
    features = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(feature_map)
    logits = layers.Dense(num_classes, name="logits")(features)
    # float32 softmax even under a mixed-precision policy: AUC needs well-resolved scores.
    probabilities = layers.Activation("softmax", dtype="float32",
                                      name=PROBABILITIES_LAYER)(logits)
    return keras.Model(inputs, probabilities, name=name)


def _scaled(width: int, multiplier: float) -> int:
    return max(1, int(round(width * multiplier)))


def _resnet(input_shape, num_classes, block_factory, name, width_multiplier, small_input):
    inputs = keras.Input(input_shape, name="images")
    stem_width = _scaled(RESNET_STAGE_WIDTHS[0], width_multiplier)
    if small_input:
        x = same_conv(stem_width, 3, name="stem_conv")(inputs)
    else:
        x = same_conv(stem_width, 7, strides=2, name="stem_conv")(inputs)
    x = batch_norm(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    if not small_input:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (count, width) in enumerate(zip(RESNET_STAGE_BLOCKS, RESNET_STAGE_WIDTHS),
                                           start=1):
        for index in range(1, count + 1):
            # The first block of stages 2-4 halves the resolution.
            strides = 2 if stage > 1 and index == 1 else 1
            x = block_factory(_scaled(width, width_multiplier), strides,
                              name=f"stage{stage}_block{index}")(x)
    return _classification_head(inputs, x, num_classes, name)


def _no_imagenet_weights(name, pretrained):
    if pretrained:
        raise UserError(f"Keras publishes no ImageNet weights for {name}; train it from scratch "
                        "(pretrained=False)")


@register_classifier("resnet34")
def build_resnet34(input_shape, num_classes, *, pretrained=False, weights_path=None,
                   width_multiplier=1.0, small_input=False) -> keras.Model:
    _no_imagenet_weights("resnet34", pretrained)
    return _resnet(input_shape, num_classes,
                   lambda filters, strides, name: BasicResidualBlock(filters, strides, name=name),
                   "resnet34", width_multiplier, small_input)


@register_classifier("resnet50_cbam")
def build_resnet50_cbam(input_shape, num_classes, *, pretrained=False, weights_path=None,
                        width_multiplier=1.0, small_input=False) -> keras.Model:
    _no_imagenet_weights("resnet50_cbam", pretrained)
    return _resnet(
        input_shape, num_classes,
        lambda filters, strides, name: BottleneckResidualBlock(filters, strides, attention=True,
                                                               name=name),
        "resnet50_cbam", width_multiplier, small_input,
    )


@register_classifier("densenet169")
def build_densenet169(input_shape, num_classes, *, pretrained=False, weights_path=None,
                      width_multiplier=1.0, small_input=False) -> keras.Model:
    if width_multiplier != 1.0 or small_input:
        raise UserError("densenet169 is Keras's DenseNet169 (fixed growth rate and stem); "
                        "width_multiplier and small_input apply to the ResNets only")
    weights = None
    if pretrained:
        if input_shape[-1] != 3:
            raise UserError(f"ImageNet weights need 3-channel input, got {input_shape}")
        weights = imagenet_weights.resolve_weights(imagenet_weights.DENSENET169, weights_path)
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    if pretrained:
        # The ImageNet weights expect (x/255 - mean) / std; ours are in [-1, 1].
        x = layers.Rescaling(0.5, offset=0.5, name="to_unit_range")(x)
        x = layers.Normalization(mean=IMAGENET_MEAN,
                                 variance=[s * s for s in IMAGENET_STD],
                                 name="imagenet_normalization")(x)
    try:
        backbone = keras.applications.DenseNet169(include_top=False, weights=weights,
                                                  input_shape=input_shape, pooling=None)
    except ValueError as error:  # e.g. inputs smaller than 32x32
        raise UserError(f"cannot build densenet169 for input {input_shape}: {error}") from None
    except OSError as error:
        raise UserError(f"could not load DenseNet169 weights from {weights}: {error}") from None
    return _classification_head(inputs, backbone(x), num_classes, "densenet169")
