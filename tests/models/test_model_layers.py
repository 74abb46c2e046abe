"""The building blocks: window helpers, encoder block, conditional LN, resampling, embeddings."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.models import (
    BicubicUpsample,
    ClassAndSourceTokens,
    ConditionalLayerNorm,
    DiscriminatorStage,
    LayerNorm,
    GeneratorStage,
    MultiHeadSelfAttention,
    MultiScalePatchEmbedding,
    PixelShuffleUpsample,
    PositionEmbedding,
    TokenAveragePool,
    TransformerEncoder,
    window_partition,
    window_reverse,
)
from hvitgan_tf.models.embeddings import image_to_patches

RNG = np.random.default_rng(1234)


def normal(*shape):
    return RNG.standard_normal(shape).astype("float32")


def built(layer, shape):
    layer.build(shape)
    return layer


def randomize(layer, scale=0.3):
    """Give every weight random values (zero-initialised ones would hide mistakes)."""
    layer.set_weights([normal(*w.shape) * scale for w in layer.get_weights()])
    return layer


# -- window helpers -----------------------------------------------------------------------

def test_window_partition_groups_the_right_tokens_and_round_trips():
    grid, window, width = 6, 3, 2
    # Token (r, c) carries its own coordinates, so we can see where it went.
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    tokens = np.stack([rows, cols], -1).reshape(1, grid * grid, width).astype("float32")
    tokens = np.concatenate([tokens, tokens + 100], axis=0)  # batch of 2, told apart by +100
    windows = np.asarray(window_partition(tokens, grid, window))
    assert windows.shape == (2 * 4, window * window, width)
    # Window 1 of image 0 is the top-right block: rows 0-2, columns 3-5, row-major inside.
    expected = [[r, c] for r in range(3) for c in range(3, 6)]
    np.testing.assert_array_equal(windows[1], expected)
    np.testing.assert_array_equal(windows[4 + 2], np.array(
        [[r, c] for r in range(3, 6) for c in range(3)]) + 100)  # image 1, bottom-left
    np.testing.assert_array_equal(window_reverse(windows, grid, window), tokens)


def test_window_block_with_window_equal_to_grid_is_the_global_block():
    x = normal(2, 16, 8)
    global_block = randomize(built(TransformerEncoder(2, window_size=None), x.shape))
    window_block = built(TransformerEncoder(2, window_size=4), x.shape)
    window_block.set_weights(global_block.get_weights())
    np.testing.assert_allclose(window_block(x), global_block(x), atol=1e-5)


def test_window_block_equals_the_global_block_run_on_each_window():
    # Everything but attention is per token, so a windowed block restricted to one window is the
    # global block applied to that window's tokens alone.
    grid, window = 4, 2
    x = normal(2, grid * grid, 8)
    window_block = randomize(built(TransformerEncoder(2, window_size=window), x.shape))
    global_block = built(TransformerEncoder(2), (None, window * window, 8))
    global_block.set_weights(window_block.get_weights())
    expected = window_reverse(global_block(window_partition(x, grid, window)), grid, window)
    np.testing.assert_allclose(window_block(x), expected, atol=1e-5)
    # ...and it is not the global block over the whole grid.
    whole = built(TransformerEncoder(2), x.shape)
    whole.set_weights(window_block.get_weights())
    assert np.max(np.abs(np.asarray(whole(x)) - np.asarray(window_block(x)))) > 1e-3


def test_attention_matches_a_numpy_reference():
    x = normal(2, 5, 8)
    layer = randomize(built(MultiHeadSelfAttention(2), x.shape))
    w_qkv, b_qkv, w_out, b_out = layer.get_weights()
    qkv = x @ w_qkv + b_qkv
    q, k, v = (qkv[..., i * 8:(i + 1) * 8].reshape(2, 5, 2, 4).transpose(0, 2, 1, 3)
               for i in range(3))
    logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    heads = (weights @ v).transpose(0, 2, 1, 3).reshape(2, 5, 8)
    np.testing.assert_allclose(layer(x), heads @ w_out + b_out, atol=1e-5)


def test_encoder_block_uses_layer_norm_epsilon_and_exact_gelu():
    block = built(TransformerEncoder(2, epsilon=1e-6), (None, 4, 8))
    assert block.attention_norm.epsilon == block.mlp_norm.epsilon == 1e-6
    x = normal(1, 4, 8)
    # Rebuild the MLP half by hand with the erf GELU; the tanh approximation differs by ~1e-3.
    randomize(block)
    after_attention = x + np.asarray(block.attention(block.attention_norm(x)))
    hidden = np.asarray(block.mlp_hidden(block.mlp_norm(after_attention)))
    exact = np.asarray(keras.activations.gelu(hidden, approximate=False))
    expected = after_attention + np.asarray(block.mlp_output(exact))
    np.testing.assert_allclose(block(x), expected, atol=1e-5)


# -- layer norms --------------------------------------------------------------------------

def test_layer_norm_matches_keras_forward_and_has_exact_second_derivatives():
    x = normal(3, 5, 16) * 2 + 1
    ours = randomize(built(LayerNorm(1e-6), x.shape))
    reference = built(keras.layers.LayerNormalization(epsilon=1e-6), x.shape)
    reference.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), reference(x), atol=1e-5)

    # d/dw of ||d/dx sum(sin(LN(x * w)))||^2 against central differences, in float64. Keras's
    # own LayerNormalization fails this (stop_gradient inside tf.nn.moments).
    x64 = tf.constant(x.astype("float64"))
    w = tf.Variable(RNG.standard_normal(16))
    layer = LayerNorm(1e-6, dtype="float64")
    layer.build(x.shape)

    def penalty():
        with tf.GradientTape() as inner:
            inner.watch(x64)
            value = tf.reduce_sum(tf.sin(layer(x64 * w)))
        return tf.reduce_sum(inner.gradient(value, x64) ** 2)

    with tf.GradientTape() as outer:
        result = penalty()
    direction = RNG.standard_normal(16)
    analytic = float(tf.reduce_sum(outer.gradient(result, w) * direction))
    start, eps = w.numpy(), 1e-6
    w.assign(start + eps * direction)
    plus = float(penalty())
    w.assign(start - eps * direction)
    minus = float(penalty())
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)



def test_zero_initialised_conditional_layer_norm_is_plain_layer_norm():
    x, e = normal(3, 5, 16) * 3 + 1, normal(3, 7)
    cln = built(ConditionalLayerNorm(1e-6), [(None, 5, 16), (None, 7)])
    plain = built(keras.layers.LayerNormalization(epsilon=1e-6), (None, 5, 16))
    np.testing.assert_allclose(cln([x, e]), plain(x), atol=1e-6)


def test_conditional_layer_norm_follows_the_spec_formula():
    x, e = normal(3, 5, 16), normal(3, 7)
    cln = randomize(built(ConditionalLayerNorm(1e-6), [(None, 5, 16), (None, 7)]))
    w_g, b_g, w_b, b_b = cln.get_weights()
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    gamma = (1 + e @ w_g + b_g)[:, None, :]
    beta = (e @ w_b + b_b)[:, None, :]
    np.testing.assert_allclose(cln([x, e]), gamma * (x - mean) / np.sqrt(var + 1e-6) + beta,
                               atol=1e-4)
    # A different condition gives a different normalisation of the same tokens.
    assert np.max(np.abs(np.asarray(cln([x, e])) - np.asarray(cln([x, e[::-1]])))) > 1e-2


# -- resampling and embeddings ------------------------------------------------------------

@pytest.mark.parametrize("grid", [1, 3, 6])
def test_bicubic_upsample_is_tf_image_resize_on_the_token_grid(grid):
    x = normal(2, grid * grid, 4)
    out = BicubicUpsample()(x)
    image = tf.image.resize(x.reshape(2, grid, grid, 4), (2 * grid, 2 * grid), method="bicubic")
    np.testing.assert_allclose(out, np.reshape(image, (2, 4 * grid * grid, 4)), atol=1e-5)


def test_bicubic_upsample_has_second_derivatives_and_compiles_with_xla():
    # TF's ResizeBicubic op has neither; the matmul form has both.
    layer = built(BicubicUpsample(), (None, 9, 4))
    x = tf.constant(normal(2, 9, 4))
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            value = tf.reduce_sum(tf.sin(layer(x)))
        penalty = tf.reduce_sum(inner.gradient(value, x) ** 2)
    assert np.any(np.asarray(outer.gradient(penalty, x)))
    compiled = tf.function(layer, jit_compile=True)
    np.testing.assert_allclose(compiled(x), layer(x), atol=1e-5)


def test_pixel_shuffle_sends_channel_groups_to_the_2x2_children():
    x = normal(2, 9, 8)
    out = np.asarray(PixelShuffleUpsample()(x)).reshape(2, 6, 6, 2)
    grid = x.reshape(2, 3, 3, 8)
    # Child (2r + i, 2c + j) of token (r, c) holds channels [(2i + j) * 2, (2i + j) * 2 + 2).
    for i in range(2):
        for j in range(2):
            group = 2 * i + j
            np.testing.assert_array_equal(out[:, i::2, j::2], grid[..., 2 * group:2 * group + 2])


def test_token_average_pool_averages_2x2_neighbourhoods():
    x = normal(2, 16, 3)
    out = np.asarray(TokenAveragePool()(x)).reshape(2, 2, 2, 3)
    grid = x.reshape(2, 4, 4, 3)
    expected = grid.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_multi_scale_patch_embedding_cuts_p_2p_4p_patches():
    images = normal(2, 16, 16, 3)
    layer = built(MultiScalePatchEmbedding(2, (8, 4, 4)), images.shape)
    p2, p4, p8 = layer(images)
    assert (p2.shape, p4.shape, p8.shape) == ((2, 64, 8), (2, 16, 4), (2, 4, 4))
    # The 4px-patch token at (row 1, col 2) embeds pixels [4:8, 8:12] plus its own position.
    patches = np.asarray(image_to_patches(images, 4))
    np.testing.assert_array_equal(patches[:, 1 * 4 + 2], images[:, 4:8, 8:12].reshape(2, -1))
    kernel, bias = layer.projections[1].get_weights()
    position = layer.position_embeddings[1].get_weights()[0]
    np.testing.assert_allclose(p4[:, 6], patches[:, 6] @ kernel + bias + position[0, 6],
                               atol=1e-5)
    # Each scale has its own projection (kernel, bias) and position embedding.
    assert len({id(w) for w in layer.weights}) == 3 * 3


def test_class_and_source_tokens_are_prepended_for_any_batch():
    layer = built(ClassAndSourceTokens(), (None, 4, 8))
    out = tf.function(layer, input_signature=[tf.TensorSpec((None, 4, 8))])
    for batch in (1, 3):
        result = np.asarray(out(normal(batch, 4, 8)))
        assert result.shape == (batch, 6, 8)
        np.testing.assert_array_equal(result[:, :2], np.broadcast_to(
            layer.get_weights()[0], (batch, 2, 8)))


# -- serialisation of every layer ---------------------------------------------------------

LAYERS = {
    "attention": (lambda: MultiHeadSelfAttention(2), (None, 9, 8)),
    "global block": (lambda: TransformerEncoder(2, 2.0, None, 1e-6), (None, 16, 8)),
    "window block": (lambda: TransformerEncoder(2, 4.0, 2, 1e-5), (None, 16, 8)),
    "conditional LN": (lambda: ConditionalLayerNorm(1e-6), [(None, 4, 8), (None, 3)]),
    "LN": (lambda: LayerNorm(1e-5), (None, 4, 8)),
    "position": (lambda: PositionEmbedding(), (None, 4, 8)),
    "patches": (lambda: MultiScalePatchEmbedding(2, (4, 2, 2)), (None, 8, 8, 3)),
    "tokens": (lambda: ClassAndSourceTokens(), (None, 4, 8)),
    "bicubic": (lambda: BicubicUpsample(), (None, 4, 8)),
    "pixel shuffle": (lambda: PixelShuffleUpsample(), (None, 4, 8)),
    "pixel shuffle, blurred": (lambda: PixelShuffleUpsample(blur=True), (None, 4, 8)),
    "pool": (lambda: TokenAveragePool(), (None, 16, 8)),
    "generator stage, CLN": (
        lambda: GeneratorStage("pixel_shuffle", 2, 1, 2, 4.0, 1e-6, True),
        [(None, 4, 16), (None, 3)]),
    "generator stage, LN": (lambda: GeneratorStage("bicubic", 1, 2, None, 4.0, 1e-6, False),
                            (None, 4, 8)),
    "generator stage, blur and noise map": (
        lambda: GeneratorStage("pixel_shuffle", 1, 1, None, 4.0, 1e-6, True, shuffle_blur=True,
                               noise_scale=0.5, noise_dim=2),
        [(None, 4, 16), (None, 3)]),
    "generator stage, LN and noise map": (
        lambda: GeneratorStage("bicubic", 1, 2, None, 4.0, 1e-6, False, noise_scale=0.5,
                               noise_dim=3),
        [(None, 4, 8), (None, 3)]),
    "discriminator stage": (lambda: DiscriminatorStage(2, 2, 2, 4.0, 1e-6, True),
                            (None, 16, 8)),
}


def _example(shape):
    if isinstance(shape, list):
        return [_example(s) for s in shape]
    return normal(2, *shape[1:])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trips_through_its_config(name):
    make, shape = LAYERS[name]
    layer = randomize(built(make(), shape))
    config = layer.get_config()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == config
    assert clone.built  # rebuilt from the recorded build config, as load_model does
    clone.set_weights(layer.get_weights())
    x = _example(shape)
    for got, want in zip(tf.nest.flatten(clone(x)), tf.nest.flatten(layer(x))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
