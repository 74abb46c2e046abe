"""The GAN's own class head as a benchmark classifier: ``hvitgan_head`` (docs/method.md §9, Table
1's "own class head" rows).

What "own class head" means here
    The classifier *is* the HViTGAN discriminator (docs/method.md §3) read as a classifier: images
    -> multi-scale patch embedding -> the four transformer stages -> final LayerNorm -> class
    token -> class head (Dense -> ``num_classes``) -> softmax. The source (critic) head is kept
    but frozen and unused. The architecture comes from the GAN's model config.

    With a GAN run (``RUN_DIR``, its ``best`` checkpoint by default, which falls back to
    ``last``) the weights start as that run's trained discriminator: the head that selected the
    synthetic patches (docs/method.md §6.3), together with the features it learned adversarially.
    Both arms of the comparison then fine-tune that same starting point with the benchmark's
    ordinary supervised recipe:

    - "own class head"            = the GAN's head fine-tuned on the real training data only;
    - "own class head + Aug"      = the same start fine-tuned on real + selected synthetic data.

    Without a run the same architecture trains from scratch (a pure-transformer baseline of the
    GAN's size). Either way the training loop, optimiser and augmentation are exactly those of
    the other classifiers, so the rows differ only by the network and its initialisation.

    The paper does not say whether its "own class head" numbers come from the GAN's
    discriminator as trained or fine-tuned; fine-tuning is the reading under which "+ Aug" can
    differ from the plain row at all (the synthetic data must be trained on), so both rows here
    are fine-tuned.

Input size
    The discriminator's position embeddings fix its input size ``S`` (the GAN's). Images of
    another size are resized to ``S`` inside the model (antialiased bilinear, the data
    pipeline's rule), so the head can run in a benchmark at any ``--image-size``.

``build_classifier("hvitgan_head", input_shape, num_classes, pretrained=..., weights_path=RUN)``
works once this module is imported: ``weights_path`` names the GAN run (its config gives the
architecture), ``pretrained=True`` starts from its discriminator weights. Without a run, the
architecture is the preset whose image size equals the input size (tiny 16, small 32, pcam96 96).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence, Tuple

import keras

from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation.classifiers import PROBABILITIES_LAYER, register_classifier
from hvitgan_tf.export.classifier import FEATURES_LAYER
from hvitgan_tf.models.config import DiscriminatorConfig, ModelConfig

NAME = "hvitgan_head"


@dataclasses.dataclass(frozen=True, eq=False)
class GANHead:
    """Where a head's architecture (and optionally its starting weights) come from.

    Attributes:
        discriminator: the discriminator config (its ``num_classes`` and ``image_size``).
        class_names: the GAN's classes, when known (checked against the benchmark data).
        weights: ``Discriminator.get_weights()`` of a trained GAN, or None (from scratch).
        origin: a readable description for reports, e.g. ``runs/demo (iter-00000440)``.
    """

    discriminator: DiscriminatorConfig
    class_names: Tuple[str, ...] = ()
    weights: Optional[list] = None
    origin: str = ""

    @property
    def image_size(self) -> int:
        return int(self.discriminator.image_size)

    @property
    def pretrained(self) -> bool:
        return self.weights is not None

    def without_weights(self) -> "GANHead":
        return dataclasses.replace(self, weights=None,
                                   origin=f"{self.origin}, architecture only")


def head_from_run(run_dir: str, checkpoint: str = "best") -> GANHead:
    """The discriminator of a training run (``checkpoint``: best | last | a weights file)."""
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.gan import HViTGAN
    from hvitgan_tf.training.runner import load_run

    run_dir = os.fspath(run_dir)
    model_config, train_config, data_info = load_run(run_dir)
    path = checkpoints.resolve(run_dir, checkpoint)
    # The checkpoint holds the whole training state (G, D, EMA G, optimisers); rebuild the
    # same wrapper to read it, then keep only the discriminator's weights.
    gan = HViTGAN(model_config, train_config, data_info["class_counts"])
    gan.compile()
    try:
        gan.load_weights(path)
    except (ValueError, OSError) as error:
        raise UserError(f"cannot read the GAN checkpoint {path}: {error}") from None
    return GANHead(model_config.discriminator, tuple(data_info.get("class_names") or ()),
                   gan.discriminator.get_weights(),
                   origin=f"{run_dir} ({os.path.basename(path)})")


def head_from_model_config(model_config, class_names: Sequence[str] = (),
                           origin: str = "") -> GANHead:
    """A from-scratch head with the discriminator of ``model_config`` (a ``ModelConfig`` or
    its dict, e.g. from an export's metadata)."""
    if isinstance(model_config, dict):
        model_config = ModelConfig.from_dict(model_config)
    return GANHead(model_config.discriminator, tuple(class_names), None,
                   origin=origin or f"preset {model_config.preset}, from scratch")


def head_for_image_size(image_size: int, num_classes: int) -> GANHead:
    """A from-scratch head with the discriminator of the preset made for ``image_size``."""
    from hvitgan_tf.models.config import PRESETS, preset

    for name in PRESETS:
        config = preset(name, num_classes)
        if config.image_size == int(image_size):
            return head_from_model_config(config, origin=f"preset {name}, from scratch")
    sizes = ", ".join(f"{n} {preset(n, num_classes).image_size}" for n in PRESETS)
    raise UserError(f"no GAN preset has {image_size} px images ({sizes}); give hvitgan_head a "
                    "GAN run (--gan-run) or an exported model (--model) for its architecture")


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class DiscriminatorFeatures(keras.layers.Layer):
    """The HViTGAN discriminator's trunk as a layer: ``images -> class-token features [N, D]``.

    The features are the class token after the final LayerNorm, the vector the GAN's class
    head reads (``Discriminator.features``). The discriminator's own two heads are frozen and
    off the path: the classifier's head is a separate ``logits`` layer (see
    ``build_hvitgan_head``), so that the features are a layer output of their own.
    """

    def __init__(self, discriminator_config, **kwargs):
        super().__init__(**kwargs)
        from hvitgan_tf.models.discriminator import Discriminator

        if isinstance(discriminator_config, DiscriminatorConfig):
            discriminator_config = dataclasses.asdict(discriminator_config)
        self.discriminator_config = dict(discriminator_config)
        self.discriminator = Discriminator(DiscriminatorConfig(**self.discriminator_config),
                                           name="discriminator")

    def build(self, input_shape):
        size = self.discriminator.config.image_size
        self.discriminator.build((None, size, size, 3))
        # No gradient reaches the heads; frozen, the optimiser neither warns about them nor
        # allocates slots for them.
        self.discriminator.class_head.trainable = False
        self.discriminator.source_head.trainable = False

    def call(self, images, training=False):
        return self.discriminator.features(images, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.discriminator.config.embed_dim)

    def get_config(self):
        return {**super().get_config(), "discriminator_config": self.discriminator_config}


def build_hvitgan_head(input_shape: Sequence[int], num_classes: int, head: GANHead
                       ) -> keras.Model:
    """The ``hvitgan_head`` classifier: ``[-1, 1]`` images -> class probabilities.

    Layers: (``to_gan_size`` resize if needed) -> ``features`` (the discriminator trunk, class
    token) -> ``logits`` (Dense, initialised from the GAN's class head when ``head`` has
    weights) -> ``probabilities`` (float32 softmax). The ``images`` input, ``features`` and
    ``probabilities`` names follow ``classifiers``' conventions, so ``export_classifier`` and
    the ``classifier:`` FID extractor work on it.
    """
    from hvitgan_tf.models.linear import linear

    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise UserError(f"hvitgan_head needs RGB input (H, W, 3), got {input_shape}")
    config = head.discriminator
    if config.num_classes != int(num_classes):
        if head.pretrained:
            raise UserError(f"the GAN ({head.origin}) has {config.num_classes} classes but the "
                            f"data has {num_classes}; its class head cannot be reused")
        config = dataclasses.replace(config, num_classes=int(num_classes))
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    size = config.image_size
    if input_shape[:2] != (size, size):
        x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True,
                                  name="to_gan_size")(x)
    trunk = DiscriminatorFeatures(config, name=FEATURES_LAYER)
    features = trunk(x)
    # float32 like the discriminator's own heads (docs/method.md §3 keeps the scores in full
    # precision).
    head_layer = linear(config.num_classes, name="logits", dtype="float32")
    logits = head_layer(features)
    if head.weights is not None:
        discriminator = trunk.discriminator
        discriminator.set_weights(head.weights)
        head_layer.set_weights([w.numpy() for w in (discriminator.class_head.kernel,
                                                    discriminator.class_head.bias)])
    probabilities = keras.layers.Activation("softmax", dtype="float32",
                                            name=PROBABILITIES_LAYER)(logits)
    return keras.Model(inputs, probabilities, name=NAME)


@register_classifier(NAME)
def _build_registered(input_shape, num_classes, *, pretrained=False, weights_path=None,
                      width_multiplier=1.0, small_input=False) -> keras.Model:
    """``build_classifier`` entry: ``weights_path`` is a GAN run folder (see module doc)."""
    if width_multiplier != 1.0 or small_input:
        raise UserError("hvitgan_head has the GAN discriminator's architecture; "
                        "width_multiplier and small_input apply to the ResNets only")
    if pretrained and not weights_path:
        raise UserError("hvitgan_head starts from a trained GAN's discriminator: give its run "
                        "folder (weights_path / --gan-run RUN_DIR)")
    if weights_path:
        head = head_from_run(weights_path)
        if not pretrained:
            head = head.without_weights()
    else:
        head = head_for_image_size(input_shape[0], num_classes)
    return build_hvitgan_head(input_shape, num_classes, head)
