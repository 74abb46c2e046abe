"""FID and KID as streaming Keras metrics over extractor features.

Both metrics take *features*, not images: ``update_state(real_features=..., fake_features=...)``
with ``[N, d]`` arrays, one side or both per call, batch after batch. Which network produced the
features (InceptionV3, a classifier's penultimate layer) is the caller's choice; see
``feature_extractors``. Real-data statistics computed once (``reference_statistics``) can be
installed as a fixed *reference*: ``reset_state()`` then clears only the generated side, which is
what a per-epoch evaluation wants.

State lives in Keras variables (float64 for the moments), so ``update_state`` works eagerly and
inside a ``tf.function``. ``result()`` runs the float64 numpy code of ``distances`` (through
``tf.numpy_function`` when traced). The data-dependent shift below means the state of two
replicas cannot be summed: update these metrics outside a distribution strategy's replica
context (gather the features first), which is how evaluation callbacks use them anyway.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf.metrics.distances import (KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance,
                                          kernel_inception_distance)
from hvitgan_tf.metrics.feature_statistics import DEFAULT_MAX_SAMPLES, FeatureStatistics


def _feature_matrix(features, dim: int, name: str, dtype) -> tf.Tensor:
    x = tf.convert_to_tensor(features)
    if x.shape.rank is not None and (x.shape.rank != 2 or x.shape[-1] not in (None, dim)):
        raise ValueError(f"{name} must have shape [N, {dim}], got {x.shape}")
    return tf.cast(x, dtype)


class _RunningMoments:
    """Count, mean and covariance of a stream of feature vectors, in float64 metric variables.

    The state is the count ``n``, a shift vector ``s`` and the sums ``Σ(x−s)`` and
    ``Σ(x−s)(x−s)ᵀ``. The covariance is ``(Σ(x−s)(x−s)ᵀ − n·m mᵀ) / (n−1)`` with
    ``m = Σ(x−s)/n``. With ``s = 0`` that is the textbook one-pass formula, which cancels
    catastrophically when the mean is large against the spread; with ``s`` set to the first
    batch's mean, ``m`` is only that batch's sampling error and nothing large is subtracted.
    The sums stay additive, so batch order and batch size do not matter (beyond rounding).
    """

    def __init__(self, metric: keras.metrics.Metric, prefix: str, dim: int):
        self.dim = dim
        self.count = metric.add_variable((), "zeros", dtype="float64", name=f"{prefix}_count")
        self.shift = metric.add_variable((dim,), "zeros", dtype="float64", name=f"{prefix}_shift")
        self.shifted_sum = metric.add_variable((dim,), "zeros", dtype="float64",
                                               name=f"{prefix}_shifted_sum")
        self.shifted_outer = metric.add_variable((dim, dim), "zeros", dtype="float64",
                                                 name=f"{prefix}_shifted_outer")

    @property
    def variables(self):
        return [self.count, self.shift, self.shifted_sum, self.shifted_outer]

    def update(self, x: tf.Tensor):
        """Add the rows of ``x`` (float64 ``[n, d]``)."""
        n = tf.cast(tf.shape(x)[0], tf.float64)
        batch_mean = tf.math.divide_no_nan(tf.reduce_sum(x, axis=0), n)
        shift = tf.where(tf.equal(self.count.value, 0.0), batch_mean, self.shift.value)
        self.shift.assign(shift)
        centered = x - shift
        self.shifted_sum.assign_add(tf.reduce_sum(centered, axis=0))
        self.shifted_outer.assign_add(tf.matmul(centered, centered, transpose_a=True))
        self.count.assign_add(n)

    def install(self, stats: FeatureStatistics):
        """Set the state to exactly reproduce ``stats``' mean and covariance."""
        if stats.feature_dim != self.dim:
            raise ValueError(f"statistics have {stats.feature_dim} features, the metric {self.dim}")
        self.count.assign(float(stats.count))
        self.shift.assign(stats.mean)
        self.shifted_sum.assign(np.zeros(self.dim))
        self.shifted_outer.assign(stats.covariance * (stats.count - 1))

    def reset(self):
        for variable in self.variables:
            variable.assign(tf.zeros(variable.shape, variable.dtype))


def moments_from_state(count, shift, shifted_sum, shifted_outer, side: str = "feature"):
    """(mean, covariance) in float64 from ``_RunningMoments`` state (numpy arrays)."""
    count = float(count)
    if count < 2:
        raise ValueError(f"FID needs at least 2 {side} vectors, got {int(count)}")
    centered_mean = np.asarray(shifted_sum, np.float64) / count
    mean = np.asarray(shift, np.float64) + centered_mean
    covariance = (np.asarray(shifted_outer, np.float64)
                  - count * np.outer(centered_mean, centered_mean)) / (count - 1.0)
    return mean, 0.5 * (covariance + covariance.T)


def _fid_from_state(*state) -> np.float64:
    real_mean, real_cov = moments_from_state(*state[:4], side="real")
    fake_mean, fake_cov = moments_from_state(*state[4:], side="fake")
    return np.float64(frechet_distance(real_mean, real_cov, fake_mean, fake_cov))


class _RealFakeFeatures:
    """What FID and KID share: a real side (streamed, or a fixed reference) and a fake side,
    each fed ``[N, feature_dim]`` features; the subclass says how a side stores them."""

    _feature_dtype = tf.float64  # what update() receives

    def update_state(self, real_features=None, fake_features=None):
        """Add a batch of real and/or generated features (``[N, feature_dim]``, any float)."""
        if real_features is None and fake_features is None:
            raise ValueError("update_state needs real_features, fake_features or both")
        if real_features is not None:
            if self._reference_fixed:
                raise ValueError("the real side is a fixed reference; call clear_reference() "
                                 "before adding real features")
            self._real.update(_feature_matrix(real_features, self.feature_dim,
                                              "real_features", self._feature_dtype))
        if fake_features is not None:
            self._fake.update(_feature_matrix(fake_features, self.feature_dim,
                                              "fake_features", self._feature_dtype))


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class FrechetInceptionDistance(_RealFakeFeatures, keras.metrics.Metric):
    """FID between the real and the generated feature streams (docs/method.md §9).

    Args:
        feature_dim: width ``d`` of the feature vectors (2048 for InceptionV3).
        reference: optional ``FeatureStatistics`` of the real data; installs them as the fixed
            real side (see ``set_reference``).

    ``result()`` is ``‖μr−μf‖² + Tr(Σr + Σf − 2(Σr Σf)^{1/2})`` in float64 (see
    ``distances.frechet_distance`` for how the matrix square root is kept real and stable).
    It needs at least two vectors on each side.
    """

    def __init__(self, feature_dim: int, reference: FeatureStatistics | None = None,
                 name: str = "fid", **kwargs):
        kwargs.pop("dtype", None)  # the state and the result are always float64
        super().__init__(name=name, dtype="float64", **kwargs)
        self.feature_dim = int(feature_dim)
        self._real = _RunningMoments(self, "real", self.feature_dim)
        self._fake = _RunningMoments(self, "fake", self.feature_dim)
        self._reference_fixed = False
        if reference is not None:
            self.set_reference(reference)

    def result(self):
        state = self._real.variables + self._fake.variables
        if tf.executing_eagerly():
            return tf.constant(_fid_from_state(*[v.numpy() for v in state]), tf.float64)
        value = tf.numpy_function(_fid_from_state, [v.value for v in state], tf.float64,
                                  stateful=False)
        value.set_shape(())
        return value

    def reset_state(self):
        """Clear the generated side, and the real side unless it is a fixed reference."""
        self._fake.reset()
        if not self._reference_fixed:
            self._real.reset()

    def set_reference(self, statistics: FeatureStatistics):
        """Use precomputed real-data statistics as the real side until ``clear_reference``."""
        self._real.install(statistics)
        self._reference_fixed = True

    def clear_reference(self):
        self._reference_fixed = False
        self._real.reset()

    def real_statistics(self) -> FeatureStatistics:
        """Mean, covariance and count of the real side (eager only)."""
        return self._statistics(self._real, "real")

    @staticmethod
    def _statistics(moments: _RunningMoments, side: str) -> FeatureStatistics:
        state = [v.numpy() for v in moments.variables]
        mean, covariance = moments_from_state(*state, side=side)
        return FeatureStatistics(mean, covariance, int(state[0]))

    def get_config(self):
        # The reference statistics are data, not configuration: install them again after
        # deserialising.
        config = super().get_config()
        config.update(feature_dim=self.feature_dim)
        return config


# -- KID -------------------------------------------------------------------------------------

_EMPTY_KEY = np.iinfo(np.int64).max
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, splitmix64's increment
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _u64(value: int) -> tf.Tensor:
    return tf.constant(value % 2**64, tf.uint64)


def stream_keys(positions, seed: int) -> tf.Tensor:
    """Pseudo-random 63-bit keys (int64 >= 0) for stream positions: splitmix64's output function.

    A pure function of ``(seed, position)``, so a row's key does not depend on how the stream
    was cut into batches. (``tf.random.stateless_*`` cannot give per-row seeds in one call, and
    ``tf.random.experimental.index_shuffle`` maps neighbouring positions to neighbouring values.)
    uint64 arithmetic wraps modulo 2^64, which is what the hash relies on.
    """
    z = (tf.cast(positions, tf.uint64) + _u64(1)) * _u64(_GOLDEN) + _u64(seed * _MIX2)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(30))) * _u64(_MIX1)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(27))) * _u64(_MIX2)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(31)))
    return tf.cast(tf.bitwise.right_shift(z, _u64(1)), tf.int64)


class _FeatureSample:
    """A uniformly random subset of at most ``capacity`` rows of a feature stream.

    "Bottom-k" sampling: every row gets a pseudo-random key from its position in the stream and
    the sample is the ``capacity`` rows with the smallest keys. Any fixed set of keys' order is a
    uniformly random permutation, so the kept rows are a uniform subset without replacement,
    and since keys depend only on positions, the result (rows and their order) is the same
    however the stream is batched. Memory is ``capacity x d`` float32.
    """

    def __init__(self, metric: keras.metrics.Metric, prefix: str, dim: int, capacity: int,
                 seed: int):
        self.dim, self.capacity, self.seed = dim, capacity, seed
        self.rows = metric.add_variable((capacity, dim), "zeros", dtype="float32",
                                        name=f"{prefix}_rows")
        self.keys = metric.add_variable((capacity,), "zeros", dtype="int64",
                                        name=f"{prefix}_keys")
        self.seen = metric.add_variable((), "zeros", dtype="int64", name=f"{prefix}_seen")
        self.reset()

    def update(self, x: tf.Tensor):
        """Offer the rows of ``x`` (float32 ``[n, d]``) to the sample."""
        n = tf.shape(x, out_type=tf.int64)[0]
        new_keys = stream_keys(self.seen.value + tf.range(n, dtype=tf.int64), self.seed)
        all_keys = tf.concat([self.keys.value, new_keys], axis=0)
        all_rows = tf.concat([self.rows.value, x], axis=0)
        # top_k of the negated keys = the smallest keys, in increasing key order.
        _, keep = tf.math.top_k(-all_keys, k=self.capacity, sorted=True)
        self.keys.assign(tf.gather(all_keys, keep))
        self.rows.assign(tf.gather(all_rows, keep))
        self.seen.assign_add(n)

    def install(self, sample: np.ndarray, count: int, seed: int):
        sample = np.asarray(sample, np.float32)
        if sample.ndim != 2 or sample.shape[1] != self.dim:
            raise ValueError(f"reference sample must be [m, {self.dim}], got {sample.shape}")
        if len(sample) > self.capacity:
            # Keep a uniform subset rather than the first rows (a sample may be class-sorted).
            sample = sample[np.sort(np.random.default_rng(seed).choice(
                len(sample), self.capacity, replace=False))]
        keys = np.full(self.capacity, _EMPTY_KEY, np.int64)
        keys[:len(sample)] = np.arange(len(sample))
        rows = np.zeros((self.capacity, self.dim), np.float32)
        rows[:len(sample)] = sample
        self.keys.assign(keys)
        self.rows.assign(rows)
        self.seen.assign(np.int64(max(count, len(sample))))

    def reset(self):
        self.rows.assign(tf.zeros(self.rows.shape, tf.float32))
        self.keys.assign(tf.fill([self.capacity], tf.constant(_EMPTY_KEY, tf.int64)))
        self.seen.assign(tf.constant(0, tf.int64))

    @property
    def variables(self):
        return [self.rows, self.seen]

    def values(self) -> np.ndarray:
        fill = min(int(self.seen.numpy()), self.capacity)
        return self.rows.numpy()[:fill]


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class KernelInceptionDistance(_RealFakeFeatures, keras.metrics.Metric):
    """KID between the real and generated feature streams (docs/method.md §9).

    Keeps a uniform random sample of up to ``max_samples`` feature vectors per side (see
    ``_FeatureSample``); ``result()`` is ``{name: mean, name + "_std": std}`` of the unbiased
    polynomial-kernel MMD² over ``num_subsets`` subsets of ``subset_size`` rows
    (``distances.kernel_inception_distance``). ``seed`` fixes both the stream sample and the
    subsets, so equal inputs give equal results.
    """

    _feature_dtype = tf.float32  # the kept sample is float32

    def __init__(self, feature_dim: int, num_subsets: int = KID_SUBSETS,
                 subset_size: int = KID_SUBSET_SIZE, max_samples: int = DEFAULT_MAX_SAMPLES,
                 seed: int = 0, reference: FeatureStatistics | None = None, name: str = "kid",
                 **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(name=name, dtype="float64", **kwargs)
        if max_samples < 2 or num_subsets < 1 or subset_size < 2:
            raise ValueError(f"need max_samples >= 2, num_subsets >= 1, subset_size >= 2; got "
                             f"{max_samples}, {num_subsets}, {subset_size}")
        self.feature_dim = int(feature_dim)
        self.num_subsets = int(num_subsets)
        self.subset_size = int(subset_size)
        self.max_samples = int(max_samples)
        self.seed = int(seed)
        # A different stream seed per side, so that the two samples are drawn independently.
        self._real = _FeatureSample(self, "real", self.feature_dim, self.max_samples, self.seed)
        self._fake = _FeatureSample(self, "fake", self.feature_dim, self.max_samples,
                                    self.seed + 1)
        self._reference_fixed = False
        if reference is not None:
            self.set_reference(reference)

    def _kid_from_state(self, real_rows, real_seen, fake_rows, fake_seen):
        real = real_rows[:min(int(real_seen), self.max_samples)]
        fake = fake_rows[:min(int(fake_seen), self.max_samples)]
        kid = kernel_inception_distance(real, fake, num_subsets=self.num_subsets,
                                        subset_size=self.subset_size, seed=self.seed)
        return np.float64(kid.mean), np.float64(kid.std)

    def result(self):
        state = self._real.variables + self._fake.variables
        if tf.executing_eagerly():
            mean, std = self._kid_from_state(*[v.numpy() for v in state])
        else:
            mean, std = tf.numpy_function(self._kid_from_state, [v.value for v in state],
                                          [tf.float64, tf.float64], stateful=False)
            mean.set_shape(())
            std.set_shape(())
        return {self.name: tf.convert_to_tensor(mean, tf.float64),
                f"{self.name}_std": tf.convert_to_tensor(std, tf.float64)}

    def reset_state(self):
        self._fake.reset()
        if not self._reference_fixed:
            self._real.reset()

    def set_reference(self, statistics: FeatureStatistics):
        """Use the ``sample`` of precomputed real-data statistics as the fixed real side."""
        if statistics.sample is None:
            raise ValueError("these feature statistics carry no sample; KID needs one "
                             "(compute them with max_samples > 0)")
        self._real.install(statistics.sample, statistics.count, self.seed)
        self._reference_fixed = True

    def clear_reference(self):
        self._reference_fixed = False
        self._real.reset()

    def real_sample(self) -> np.ndarray:
        """The kept real feature vectors, float32 ``[m, d]`` (eager only)."""
        return self._real.values()

    def fake_sample(self) -> np.ndarray:
        return self._fake.values()

    def get_config(self):
        config = super().get_config()
        config.update(feature_dim=self.feature_dim, num_subsets=self.num_subsets,
                      subset_size=self.subset_size, max_samples=self.max_samples,
                      seed=self.seed)
        return config


# -- one call for an evaluation ----------------------------------------------------------------

def fid_kid_against_reference(extractor, reference: FeatureStatistics, fake_batches,
                              num_subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0,
                              batch_size: int = 64) -> dict:
    """FID and KID of generated images against cached real statistics.

    ``fake_batches``: anything ``feature_extractors.iter_image_batches`` accepts. Returns
    ``{"fid", "kid", "kid_std", "num_fake"}`` (KID entries are NaN when ``reference`` carries
    no sample). Cost on a CPU: the extractor dominates (InceptionV3 at 299 px is about a
    second per image per core); KID's ``result`` grows as ``num_subsets * subset_size² * d``.
    """
    from hvitgan_tf.metrics.feature_extractors import iter_features

    if reference.feature_dim != extractor.feature_dim:
        raise ValueError(f"reference statistics have {reference.feature_dim} features but the "
                         f"extractor gives {extractor.feature_dim}: computed with another "
                         "extractor?")
    fid = FrechetInceptionDistance(extractor.feature_dim, reference=reference)
    kid = None
    if reference.sample is not None:
        kid = KernelInceptionDistance(extractor.feature_dim, num_subsets=num_subsets,
                                      subset_size=subset_size, max_samples=max_samples,
                                      seed=seed, reference=reference)
    count = 0
    for features in iter_features(extractor, fake_batches, batch_size=batch_size):
        fid.update_state(fake_features=features)
        if kid is not None:
            kid.update_state(fake_features=features)
        count += len(features)
    result = {"fid": float(fid.result()), "kid": float("nan"), "kid_std": float("nan"),
              "num_fake": count}
    if kid is not None:
        values = kid.result()
        result.update(kid=float(values[kid.name]), kid_std=float(values[f"{kid.name}_std"]))
    return result
