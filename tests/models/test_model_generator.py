"""The generator (docs/method.md §2): shapes, range, conditioning, ablation, serialisation,
precision."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import (
    ConditionalLayerNorm,
    Generator,
    LayerNorm,
    build_generator,
    preset,
)
from model_inputs import noise_and_labels


def layers_of(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@pytest.mark.parametrize("name, batch", [("tiny", 3), ("small", 2)])
def test_generator_output_shape_dtype_and_range(name, batch):
    cfg = preset(name, num_classes=3).generator
    generator = build_generator(cfg)
    images = np.asarray(generator(noise_and_labels(cfg, batch), training=False))
    assert images.shape == (batch, cfg.image_size, cfg.image_size, 3)
    assert images.dtype == np.float32
    assert np.all(np.abs(images) <= 1) and np.std(images) > 0


def test_generator_forward_under_tf_function_with_unknown_batch(tiny, tiny_generator):
    cfg = tiny.generator
    generate = tf.function(
        lambda z, y: tiny_generator([z, y], training=False),
        input_signature=[tf.TensorSpec([None, cfg.latent_dim], tf.float32),
                         tf.TensorSpec([None], tf.int32)])
    z, labels = noise_and_labels(cfg, 3)
    traced = generate(z, labels)
    np.testing.assert_allclose(traced, tiny_generator([z, labels]), atol=1e-5)
    assert generate(z[:1], labels[:1]).shape == (1, 16, 16, 3)


def test_labels_change_the_output_through_the_class_projection(tiny):
    cfg = tiny.generator
    generator = build_generator(cfg)
    # Cut the other label path (the one-hot rows of the input projection) so that only the
    # conditional layer norms can carry the class.
    kernel, bias = generator.input_projection.get_weights()
    kernel[cfg.latent_dim:] = 0
    generator.input_projection.set_weights([kernel, bias])
    z = np.repeat(noise_and_labels(cfg, 1)[0], 3, axis=0)
    labels = np.arange(3, dtype="int32")

    images = np.asarray(generator([z, labels]))
    # Zero-initialised CLN == plain LN: the label has no effect yet.
    np.testing.assert_allclose(images[0], images[1], atol=1e-6)
    np.testing.assert_allclose(images[0], images[2], atol=1e-6)

    rng = np.random.default_rng(0)
    for stage in generator.stages:
        cln = stage.norm
        cln.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.2
                         for w in cln.get_weights()])
    images = np.asarray(generator([z, labels]))
    assert np.max(np.abs(images[0] - images[1])) > 1e-3
    assert np.max(np.abs(images[1] - images[2])) > 1e-3


def test_class_projection_false_has_no_conditional_layer_norm(tiny):
    with_cln = build_generator(tiny.generator)
    plain = build_generator(tiny.replace(class_projection=False).generator)
    assert sum(isinstance(layer, ConditionalLayerNorm) for layer in layers_of(with_cln)) == 4
    assert not any(isinstance(layer, ConditionalLayerNorm) for layer in layers_of(plain))
    assert plain.class_embedding is None
    assert all(isinstance(stage.norm, LayerNorm) and stage.norm.epsilon == 1e-6
               for stage in plain.stages)
    # The label still enters through the input projection.
    z = np.repeat(noise_and_labels(tiny.generator, 1)[0], 2, axis=0)
    images = np.asarray(plain([z, np.array([0, 1], "int32")]))
    assert np.max(np.abs(images[0] - images[1])) > 1e-4


def test_generator_round_trips_through_config_and_keras_file(tiny, tiny_generator, tmp_path):
    z, labels = noise_and_labels(tiny.generator, 2)
    expected = np.asarray(tiny_generator([z, labels]))

    clone = Generator.from_config(tiny_generator.get_config())
    assert clone.config == tiny.generator
    clone.build([(None, tiny.generator.latent_dim), (None,)])
    clone.set_weights(tiny_generator.get_weights())
    np.testing.assert_array_equal(clone([z, labels]), expected)

    path = tmp_path / "generator.keras"
    tiny_generator.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Generator) and loaded.config == tiny.generator
    np.testing.assert_array_equal(loaded([z, labels]), expected)


def test_gradients_reach_every_generator_weight_through_the_discriminator(
        tiny, tiny_discriminator):
    generator = build_generator(tiny.generator)
    z, labels = noise_and_labels(tiny.generator, 3)

    def gradients():
        with tf.GradientTape() as tape:
            source, logits = tiny_discriminator(generator([z, labels], training=True),
                                                training=True)
            loss = tf.reduce_sum(source) + tf.reduce_sum(logits)
        grads = tape.gradient(loss, generator.trainable_variables)
        return {v.path: None if g is None else np.asarray(tf.convert_to_tensor(g))
                for v, g in zip(generator.trainable_variables, grads)}

    grads = gradients()
    assert all(g is not None for g in grads.values())
    # At initialisation W_g = W_b = 0 in every CLN, so the class embedding (which only feeds
    # them) has an exactly zero gradient; everything else moves from the first step.
    zero = sorted(path for path, g in grads.items() if not np.any(g))
    assert zero == ["generator/class_embedding/embeddings"]
    rng = np.random.default_rng(0)
    for stage in generator.stages:
        stage.norm.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.1
                                for w in stage.norm.get_weights()])
    assert all(np.any(g) for g in gradients().values())


def test_pcam96_generator_builds_at_spec_geometry():
    cfg = preset("pcam96").generator
    generator = build_generator(cfg)
    z, labels = noise_and_labels(cfg, 1)
    images = np.asarray(generator([z, labels]))
    assert images.shape == (1, 96, 96, 3) and np.all(np.abs(images) <= 1)
    assert [stage.encoders[0].window_size for stage in generator.stages] == [None, None, 12, 16]
    assert generator.stages[3].encoders[0].attention.grid_size == 96


def test_generator_under_mixed_bfloat16(tiny, mixed_bfloat16):
    generator = build_generator(tiny.generator)
    assert generator.stages[0].encoders[0].compute_dtype == "bfloat16"
    assert generator.to_rgb.compute_dtype == "float32"
    assert generator.stages[0].norm.gamma_projection.compute_dtype == "float32"
    z, labels = noise_and_labels(tiny.generator, 2)
    with tf.GradientTape() as tape:
        images = generator([z, labels], training=True)
        loss = tf.reduce_mean(images ** 2)
    assert images.dtype == tf.float32 and np.all(np.isfinite(images))
    variables = generator.trainable_variables
    grads = tape.gradient(loss, variables)
    assert not [v.path for v, g in zip(variables, grads) if g is None]
    assert all(g.dtype == tf.float32 for g in grads)  # variables stay float32


def test_a_stage_without_blocks_upsamples_paints_and_learns(tiny, tiny_discriminator):
    """docs/method.md §11.20: `small`'s last stage on tissue has no transformer block. Such a
    stage still upsamples, normalises by class, adds its noise map and paints, and every weight
    it keeps learns."""
    import dataclasses

    from hvitgan_tf.models.flops import encoder_block, generator_forward

    cfg = dataclasses.replace(tiny.generator, depth=(1, 1, 1, 0), spatial_noise=0.3,
                              rgb_skips=True)
    generator = build_generator(cfg)
    last = generator.stages[3]
    assert last.encoders == []
    assert not [v for v in last.weights if "encoder" in v.path]
    z, labels = noise_and_labels(cfg, 3)
    images = np.asarray(generator([z, labels], training=False))
    assert images.shape == (3, 16, 16, 3) and np.std(images) > 0
    rng = np.random.default_rng(0)
    for stage in generator.stages:  # CLN weights off zero, so the class path has a gradient
        stage.norm.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.1
                                for w in stage.norm.get_weights()])
    with tf.GradientTape() as tape:
        source, logits = tiny_discriminator(generator([z, labels], training=True),
                                            training=True)
        loss = tf.reduce_sum(source) + tf.reduce_sum(logits)
    grads = tape.gradient(loss, last.trainable_variables)
    assert last.trainable_variables and all(
        g is not None and np.any(np.asarray(tf.convert_to_tensor(g))) for g in grads)
    # The FLOP count drops by exactly the missing block.
    with_block = dataclasses.replace(cfg, depth=(1, 1, 1, 1))
    grid = with_block.stage_grids[3]
    window = (grid * grid if cfg.window_size[3] is None else cfg.window_size[3] ** 2)
    block = encoder_block(grid * grid, with_block.stage_widths[3], cfg.mlp_ratio, window)
    assert generator_forward(with_block).total - generator_forward(cfg).total == block.total
