"""DiffAugment (docs/method.md §5): each op against a NumPy reference, randomness API, gradients."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.errors import UserError
from hvitgan_tf.training.diffaugment import (
    DEFAULT_POLICY,
    OPS,
    DiffAugment,
    PolicyError,
    parse_policy,
)

SEED = tf.constant([7, 11], tf.int64)
ALL_OPS = sorted(OPS)


def _images(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, size=(n, size, size, 3)).astype(np.float32))


def _dihedral(img, r):
    """NumPy reference for rotation parameter r = 4 * transpose + 2 * flip_rows + flip_cols."""
    if r & 4:
        img = img.transpose(1, 0, 2)
    if r & 2:
        img = img[::-1]
    if r & 1:
        img = img[:, ::-1]
    return img


# -- policy -------------------------------------------------------------------------------------


def test_policy_parsing():
    assert DiffAugment().policy == ("color", "translation", "cutout", "scale", "rotation")
    assert DEFAULT_POLICY.split(",") == list(DiffAugment().policy)
    assert parse_policy(" Color , translation ") == ("color", "translation")
    assert parse_policy(["scale", "rotation_small"]) == ("scale", "rotation_small")
    for empty in ("", "none", "NONE", None, []):
        assert parse_policy(empty) == ()
    with pytest.raises(PolicyError, match="'blur'.*valid ops: color, translation") as info:
        DiffAugment("color,blur")
    assert isinstance(info.value, UserError)
    with pytest.raises(PolicyError, match="twice"):
        DiffAugment("color,color")
    with pytest.raises(PolicyError, match="'none'"):
        DiffAugment("none,color")


@pytest.mark.parametrize("policy", ["", "none"])
def test_empty_policy_is_identity(policy):
    aug = DiffAugment(policy)
    x = _images()
    assert aug.sample_params(4, 16, SEED) == {}
    np.testing.assert_array_equal(aug(x, SEED).numpy(), x.numpy())
    bf = tf.cast(x, tf.bfloat16)
    assert aug.apply(bf, {}).dtype == tf.bfloat16


# -- every op: shape, dtype, range --------------------------------------------------------------


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("op", ALL_OPS)
def test_op_keeps_shape_dtype_and_sane_range(op, dtype):
    aug = DiffAugment(op)
    x = tf.cast(_images(n=8), dtype)
    out = aug(x, SEED)
    assert out.shape == x.shape and out.dtype == dtype
    values = out.numpy().astype(np.float32)
    assert np.all(np.isfinite(values))
    if op == "color":
        # brightness ±0.5, then saturation ≤ ×2 and contrast ≤ ×1.5 about means.
        assert np.abs(values).max() < 1.5 * (1.5 + 2 * 3.0) * 2
    else:
        # Geometric ops only move pixels, interpolate between them, or write the fill (0).
        tol = 1e-2 if dtype == tf.bfloat16 else 1e-6
        assert values.min() >= min(x.numpy().astype(np.float32).min(), 0.0) - tol
        assert values.max() <= max(x.numpy().astype(np.float32).max(), 0.0) + tol


def test_color_matches_reference_formula():
    aug = DiffAugment("color")
    x = _images(n=6)
    params = aug.sample_params(6, 16, SEED)
    b, s, c = (params[k].numpy()[:, None, None, None]
               for k in ("brightness", "saturation", "contrast"))
    assert np.all(np.abs(b) <= 0.5) and np.all((s >= 0) & (s <= 2)) and np.all(
        (c >= 0.5) & (c <= 1.5))
    ref = x.numpy() + b
    ref = (ref - ref.mean(axis=3, keepdims=True)) * s + ref.mean(axis=3, keepdims=True)
    mean = ref.mean(axis=(1, 2, 3), keepdims=True)
    ref = (ref - mean) * c + mean
    np.testing.assert_allclose(aug.apply(x, params).numpy(), ref, atol=1e-5)


def test_translation_is_an_integer_shift_with_zero_fill():
    aug = DiffAugment("translation")
    x = tf.reshape(tf.range(2 * 8 * 8 * 3, dtype=tf.float32) + 1.0, [2, 8, 8, 3])  # no zeros
    shifts = tf.constant([[2, -3], [-1, 1]], tf.int32)
    out = aug.apply(x, {"translation": shifts}).numpy()
    for n, (dy, dx) in enumerate(shifts.numpy()):
        ref = np.zeros((8, 8, 3), np.float32)
        for i in range(8):
            for j in range(8):
                if 0 <= i - dy < 8 and 0 <= j - dx < 8:
                    ref[i, j] = x.numpy()[n, i - dy, j - dx]
        np.testing.assert_array_equal(out[n], ref)

    drawn = aug.sample_params(512, (96, 32), SEED)["translation"].numpy()
    assert drawn.dtype == np.int32 and drawn.shape == (512, 2)
    # Up to 1/8 of the size per axis, and the whole range is used.
    assert drawn[:, 0].min() == -12 and drawn[:, 0].max() == 12
    assert drawn[:, 1].min() == -4 and drawn[:, 1].max() == 4


@pytest.mark.parametrize("centre", [(8, 8), (0, 0), (15, 3), (5, 15)])
def test_cutout_zeroes_a_half_size_square_clipped_at_borders(centre):
    aug = DiffAugment("cutout")
    x = tf.ones([1, 16, 16, 3])
    out = aug.apply(x, {"cutout_center": tf.constant([centre], tf.int32)}).numpy()[0]
    ref = np.ones((16, 16, 3), np.float32)
    top, left = centre[0] - 4, centre[1] - 4  # side 8 = half of 16
    ref[max(top, 0):max(top + 8, 0), max(left, 0):max(left + 8, 0)] = 0.0
    np.testing.assert_array_equal(out, ref)


def test_cutout_centres_cover_the_image():
    centres = DiffAugment("cutout").sample_params(2048, 16, SEED)["cutout_center"].numpy()
    assert centres.min() == 0 and centres.max() == 15


def test_scale_one_is_identity_and_zoom_moves_content():
    aug = DiffAugment("scale")
    x = _images(n=2)
    same = aug.apply(x, {"scale": tf.ones([2])})
    np.testing.assert_allclose(same.numpy(), x.numpy(), atol=1e-6)

    # A horizontal ramp v = j - c: bilinear sampling reproduces linear functions exactly, so
    # zoom s maps it to (j - c) / s where the source lies inside the image.
    size, c = 16, 7.5
    ramp = np.broadcast_to((np.arange(size) - c)[None, :, None], (size, size, 3)) / 10.0
    ramp = tf.constant(np.stack([ramp, ramp.transpose(1, 0, 2)]).astype(np.float32))
    scales = np.array([1.2, 1.15], np.float32)
    out = aug.apply(ramp, {"scale": tf.constant(scales)}).numpy()
    grid = (np.arange(size) - c) / 10.0
    np.testing.assert_allclose(out[0, 5, :, 0], grid / 1.2, atol=1e-5)  # columns shrink
    np.testing.assert_allclose(out[1, :, 5, 0], grid / 1.15, atol=1e-5)  # rows, other image

    # Zooming out uncovers a border: the outer ring samples outside the image -> fill.
    ones = aug.apply(tf.ones([1, size, size, 1]), {"scale": tf.constant([0.8])}).numpy()[0, ..., 0]
    assert ones[0, 0] == 0.0 and ones[7, 0] < 0.5
    np.testing.assert_allclose(ones[4:12, 4:12], 1.0, atol=1e-6)


def test_rotation_gives_the_documented_dihedral_transform():
    aug = DiffAugment("rotation")
    x = _images(n=8)
    r = tf.range(8, dtype=tf.int32)
    out = aug.apply(x, {"rotation": r}).numpy()
    for n in range(8):
        np.testing.assert_array_equal(out[n], _dihedral(x.numpy()[n], n))
    # The documented names of the codes.
    np.testing.assert_array_equal(out[3], np.rot90(x.numpy()[3], 2))
    np.testing.assert_array_equal(out[5], np.rot90(x.numpy()[5], -1))
    np.testing.assert_array_equal(out[6], np.rot90(x.numpy()[6], 1))
    # The 8 references are pairwise different, so "exactly one of the 8" is meaningful.
    variants = [_dihedral(x.numpy()[0], k) for k in range(8)]
    assert all(not np.array_equal(variants[a], variants[b])
               for a in range(8) for b in range(a + 1, 8))


def test_rotation_draws_each_symmetry_per_sample():
    aug = DiffAugment("rotation")
    x = tf.repeat(_images(n=1), 64, axis=0)
    out = aug(x, SEED).numpy()
    variants = [_dihedral(x.numpy()[0], k) for k in range(8)]
    found = []
    for image in out:
        matches = [k for k in range(8) if np.array_equal(image, variants[k])]
        assert len(matches) == 1
        found.append(matches[0])
    assert sorted(set(found)) == list(range(8))
    with pytest.raises(UserError, match="square"):
        aug.apply(tf.zeros([1, 8, 6, 3]), {"rotation": tf.constant([1])})


def test_rotation_small_uses_the_same_sense_as_rotation():
    aug = DiffAugment("rotation_small")
    x = _images(n=2)
    out = aug.apply(x, {"angle": tf.constant([0.0, np.pi / 2], tf.float32)}).numpy()
    np.testing.assert_allclose(out[0], x.numpy()[0], atol=1e-6)
    np.testing.assert_allclose(out[1], np.rot90(x.numpy()[1], 1), atol=1e-4)
    angles = aug.sample_params(1024, 16, SEED)["angle"].numpy()
    assert np.abs(angles).max() <= np.radians(15.0) + 1e-6 and angles.std() > 0.1


# -- randomness API -----------------------------------------------------------------------------


def test_rows_get_independent_params_and_outputs():
    aug = DiffAugment()
    params = aug.sample_params(16, 16, SEED)
    for key, value in params.items():
        flat = value.numpy().reshape(16, -1)
        assert len({tuple(row) for row in flat}) > 4, key
    out = aug(tf.repeat(_images(n=1), 16, axis=0), SEED).numpy()
    assert len({out[n].tobytes() for n in range(16)}) == 16


def test_same_seed_same_output_other_seed_other_output():
    aug = DiffAugment()
    x = _images()
    np.testing.assert_array_equal(aug(x, SEED).numpy(), aug(x, SEED).numpy())
    np.testing.assert_array_equal(aug(x, tf.constant([7, 11], tf.int32)).numpy(),
                                  aug(x, SEED).numpy())
    assert not np.allclose(aug(x, tf.constant([7, 12])).numpy(), aug(x, SEED).numpy())


def test_an_ops_draws_do_not_depend_on_the_rest_of_the_policy():
    alone = DiffAugment("color").sample_params(8, 16, SEED)
    full = DiffAugment("rotation,cutout,color").sample_params(8, 16, SEED)
    for key in alone:
        np.testing.assert_array_equal(alone[key].numpy(), full[key].numpy())


def test_slicing_params_equals_slicing_the_output():
    aug = DiffAugment(DEFAULT_POLICY + ",rotation_small")
    x = _images(n=8)
    params = aug.sample_params(8, 16, SEED)
    whole = aug.apply(x, params).numpy()
    for start, stop in [(0, 4), (4, 8), (3, 5)]:
        part = aug.apply(x[start:stop], DiffAugment.slice_params(params, start, stop)).numpy()
        np.testing.assert_array_equal(part, whole[start:stop])


def test_params_are_identical_under_xla():
    aug = DiffAugment("scale,translation")  # one float and one integer parameter path
    eager = aug.sample_params(32, 16, SEED)
    compiled = tf.function(lambda seed: aug.sample_params(32, 16, seed), jit_compile=True)(SEED)
    for key in eager:
        if eager[key].dtype.is_integer:
            np.testing.assert_array_equal(compiled[key].numpy(), eager[key].numpy(), err_msg=key)
        else:  # same integer draw; XLA may fuse low + width * u into one FMA (1 ulp)
            np.testing.assert_allclose(compiled[key].numpy(), eager[key].numpy(), rtol=0,
                                       atol=2e-7, err_msg=key)


def test_missing_params_fail_clearly():
    with pytest.raises(KeyError, match="'scale'"):
        DiffAugment("color,scale").apply(_images(), DiffAugment("color").sample_params(4, 16, SEED))


# -- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ALL_OPS)
def test_input_gradient_is_the_exact_adjoint(op):
    # Every op is affine in the image for fixed params, A(x) = Lx + b, so the gradient of
    # <A(x), y> must be L^T y: <A(x) - A(0), y> == <x, grad>. This catches missing gradients
    # and approximate ones (e.g. a warp by the inverse transform instead of the adjoint).
    aug = DiffAugment(op)
    x = _images(n=4)
    y = _images(n=4, seed=1)
    params = aug.sample_params(4, 16, SEED)
    with tf.GradientTape() as tape:
        tape.watch(x)
        inner = tf.reduce_sum(aug.apply(x, params) * y)
    grad = tape.gradient(inner, x)
    assert grad is not None and np.all(np.isfinite(grad.numpy()))
    lhs = float(inner - tf.reduce_sum(aug.apply(tf.zeros_like(x), params) * y))
    rhs = float(tf.reduce_sum(x * grad))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-4)
    assert float(tf.reduce_sum(tf.abs(grad))) > 0


class _TinyCritic:
    """softplus MLP on the flattened image: smooth, so the penalty has curvature."""

    def __init__(self, size, hidden=6, seed=0):
        rng = np.random.default_rng(seed)
        self.w1 = tf.Variable(rng.normal(0, 0.05, (size * size * 3, hidden)).astype(np.float32))
        self.b1 = tf.Variable(rng.normal(0, 0.5, hidden).astype(np.float32))
        self.w2 = tf.Variable(rng.normal(0, 1.0, (hidden, 1)).astype(np.float32))
        self.variables = [self.w1, self.b1, self.w2]

    def __call__(self, images):
        h = tf.nn.softplus(tf.reshape(images, [tf.shape(images)[0], -1]) @ self.w1 + self.b1)
        return h @ self.w2


def _gradient_penalty(aug, critic, x_hat, params):
    """docs/method.md §4: E[(||∇_x̂ D(A(x̂))|| - 1)^2] with the safe norm."""
    with tf.GradientTape() as inner:
        inner.watch(x_hat)
        scores = critic(aug.apply(x_hat, params))
    grad = inner.gradient(scores, x_hat)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norm - 1.0))


@pytest.mark.parametrize("op", ALL_OPS)
def test_second_order_gradient_through_each_op(op):
    aug = DiffAugment(op)
    critic = _TinyCritic(8)
    x_hat = _images(n=4, size=8)
    params = aug.sample_params(4, 8, SEED)
    with tf.GradientTape() as outer:
        penalty = _gradient_penalty(aug, critic, x_hat, params)
    grads = outer.gradient(penalty, critic.variables)
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
        assert float(tf.reduce_sum(tf.abs(grad))) > 0


def test_penalty_gradient_matches_finite_differences():
    aug = DiffAugment(DEFAULT_POLICY)
    critic = _TinyCritic(8, seed=3)
    x_hat = _images(n=4, size=8, seed=5)
    params = aug.sample_params(4, 8, SEED)
    with tf.GradientTape() as outer:
        penalty = _gradient_penalty(aug, critic, x_hat, params)
    grads = outer.gradient(penalty, critic.variables)
    rng = np.random.default_rng(9)
    directions = [rng.normal(size=v.shape).astype(np.float32) for v in critic.variables]
    analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, directions))

    def penalty_at(step):
        for v, base, d in zip(critic.variables, originals, directions):
            v.assign(base + step * d)
        return float(_gradient_penalty(aug, critic, x_hat, params))

    originals = [v.numpy() for v in critic.variables]
    eps = 1e-3
    numeric = (penalty_at(eps) - penalty_at(-eps)) / (2 * eps)
    assert numeric == pytest.approx(analytic, rel=2e-2)


# -- graph mode, serialisation, distribution ---------------------------------------------------


def test_tf_function_with_unknown_batch_matches_eager():
    aug = DiffAugment()

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32),
                                  tf.TensorSpec([2], tf.int64)])
    def augment(images, seed):
        return aug(images, seed)

    for n in (3, 5):
        x = _images(n=n)
        np.testing.assert_array_equal(augment(x, SEED).numpy(), aug(x, SEED).numpy())


def test_config_round_trip_and_no_weights():
    aug = DiffAugment("scale, color", fill_value=-1.0, name="aug")
    aug(_images(), SEED)
    assert aug.weights == [] and aug.trainable_weights == []
    clone = DiffAugment.from_config(json.loads(json.dumps(aug.get_config())))
    assert clone.policy == ("scale", "color") and clone.fill_value == -1.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert isinstance(restored, DiffAugment) and restored.policy == aug.policy
    x = _images()
    np.testing.assert_array_equal(restored(x, SEED).numpy(), aug(x, SEED).numpy())
    assert DiffAugment.from_config(DiffAugment("").get_config()).policy == ()


_REPLICA_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from hvitgan_tf.training.diffaugment import DiffAugment
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    aug = DiffAugment()
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)), tf.float32)
    seed = tf.constant([3, 4], tf.int64)

    @tf.function
    def step(images, seed):
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            per = 8 // ctx.num_replicas_in_sync
            start = ctx.replica_id_in_sync_group * per
            params = aug.sample_params(8, 16, seed)  # the global draw, same on every replica
            local = DiffAugment.slice_params(params, start, start + per)
            return aug.apply(images[start:start + per], local)
        return strategy.run(replica_fn)

    parts = strategy.experimental_local_results(step(images, seed))
    assert len(parts) == 2, parts
    combined = np.concatenate([p.numpy() for p in parts])
    np.testing.assert_array_equal(combined, aug(images, seed).numpy())
    print("REPLICAS-OK")
    """
)


def test_mirrored_replicas_reproduce_the_single_device_batch():
    # Logical CPU devices must be set before TensorFlow initialises, so run in a fresh process.
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", KERAS_BACKEND="tensorflow")
    result = subprocess.run([sys.executable, "-c", _REPLICA_SCRIPT], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0 and "REPLICAS-OK" in result.stdout, result.stderr[-3000:]
