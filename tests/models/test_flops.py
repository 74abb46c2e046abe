"""The analytic FLOP counts (hvitgan_tf.models.flops, docs/method.md §2-§4) against TensorFlow's own
count of the matrix products in the traced graphs."""
import pytest
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer, option_builder

from hvitgan_tf.models import build_discriminator, build_generator, flops, preset
from hvitgan_tf.training.config import TrainConfig
from hvitgan_tf.training.gan import HViTGAN, class_pass_images, iteration_flops


def matmul_flops(graph):
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    options["account_type_regexes"] = ["MatMul", "BatchMatMul.*"]
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_forward_flops_equal_the_profiled_matmuls(name):
    cfg = preset(name, num_classes=3)
    generator, discriminator = build_generator(cfg.generator), build_discriminator(
        cfg.discriminator)
    batch, size = 2, cfg.image_size
    g = tf.function(lambda z, y: generator([z, y]), input_signature=[
        tf.TensorSpec([batch, cfg.latent_dim]), tf.TensorSpec([batch], tf.int32)])
    d = tf.function(lambda x: discriminator(x), input_signature=[
        tf.TensorSpec([batch, size, size, 3])])
    assert matmul_flops(g.get_concrete_function().graph) == (
        batch * flops.generator_forward(cfg.generator).total)
    assert matmul_flops(d.get_concrete_function().graph) == (
        batch * flops.discriminator_forward(cfg.discriminator).total)


def test_forward_flops_grow_as_the_spec_says():
    # Window attention costs tokens * window^2, not tokens^2; a wider model costs more.
    cfg = preset("pcam96", num_classes=2).generator
    block_global = flops.encoder_block(96 * 96, 16, 4.0, 96 * 96)
    block_window = flops.encoder_block(96 * 96, 16, 4.0, 16 * 16)
    assert block_global.weights == block_window.weights
    assert block_global.attention == block_window.attention * (96 * 96) // (16 * 16)
    assert flops.generator_forward(cfg).total > 10 * flops.generator_forward(
        preset("small", num_classes=2).generator).total


# The paper's plain sum and the default floor, each with the class losses reading the critic's
# batch (the paper) or their own pass (the default class_diffaug), without and with CE_3.
@pytest.mark.parametrize("share", [0.0, 1.0])
@pytest.mark.parametrize("class_diffaug,on_fakes", [("same", False), ("none", False),
                                                    ("none", True)])
def test_iteration_flops_match_the_traced_training_step(share, class_diffaug, on_fakes):
    """One train_step's profiled matmuls: the outer graph plus n_critic calls of the nested
    critic function. The analytic multiples of a forward pass (3x for backprop, 6x/9x under
    the penalty's double backward, 2x more for the class floor's own backward) must land
    within a few per cent of what TensorFlow builds."""
    cfg = preset("tiny", num_classes=2)
    batch, n_critic = 4, 2
    train_config = TrainConfig(batch_size=batch, n_critic=n_critic, diffaug="color",
                               class_gradient_share=share, class_diffaug=class_diffaug,
                               d_class_on_fakes=on_fakes)
    model = HViTGAN(cfg, train_config, [1, 1])
    model.compile()
    spec = (tf.TensorSpec([batch, n_critic, cfg.image_size, cfg.image_size, 3]),
            tf.TensorSpec([batch, n_critic], tf.int32))
    concrete = tf.function(model.train_step).get_concrete_function(spec)
    outer = matmul_flops(concrete.graph)
    nested = [f for f in concrete.graph._functions.values() if hasattr(f, "graph")]
    assert nested, "the critic update is expected to be one nested function"
    traced = outer + n_critic * sum(matmul_flops(f.graph) for f in nested)
    analytic = iteration_flops(cfg, batch, n_critic, class_gradient_share=share,
                               class_view_images=class_pass_images(train_config))["iteration"]
    assert abs(traced - analytic) / analytic < 0.03, (traced, analytic)
