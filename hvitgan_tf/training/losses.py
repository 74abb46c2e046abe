"""Loss terms of one training iteration (docs/method.md §4).

Every function here returns *per-example* values; the training step sums them and divides by the
global batch, which is what makes one device and N replicas compute the same gradients
(docs/keras3-notes.md §2.3).
"""
import math

import keras
import tensorflow as tf

from hvitgan_tf.training.config import LOSS_WEIGHTING_MODES, MAX_CLASS_BOOST

# sqrt(sum(g^2) + eps): a bare sqrt has an infinite derivative at 0 and turns the penalty's
# second-order gradient into NaN as soon as one sample's input gradient vanishes (docs/method.md
# §4).
GRADIENT_NORM_EPSILON = 1e-12


def critic_input_gradient_norm(critic_fn, images):
    """Per-sample ``||∇_x D_s(x)||_2`` of a critic, kept differentiable w.r.t. the critic.

    ``critic_fn`` maps images ``[N, H, W, 3]`` to scores ``[N, 1]``; since every score depends
    only on its own image, the gradient of the summed scores is the per-sample gradient.
    The gradient is cast to float32 so a ``mixed_bfloat16`` critic still gets an exact norm.
    """
    # Watch the images only: an enclosing tape differentiates w.r.t. the critic's weights, and
    # letting this one watch them too would add every weight gradient of the first backward
    # pass to the graph (dead ops, but traced and optimised on every build of the step).
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        scores = critic_fn(images)
    gradients = tf.cast(tape.gradient(scores, images), tf.float32)  # [N, H, W, 3]
    return tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + GRADIENT_NORM_EPSILON)


def gradient_penalty(gradient_norms):
    """WGAN-GP's two-sided penalty ``(||∇|| - 1)^2`` per sample (Gulrajani et al., 2017)."""
    return tf.square(gradient_norms - 1.0)


def logistic_critic_loss(real_scores, fake_scores):
    """Per-example loss of the logistic (non-saturating) game's discriminator,
    ``softplus(-D(x)) + softplus(D(x̃))`` (Goodfellow et al., 2014): scores are logits of
    "real"."""
    return tf.nn.softplus(-real_scores) + tf.nn.softplus(fake_scores)


def interpolate(real, fake, alpha):
    """``x̂ = αx + (1-α)x̃`` with one ``α ~ U(0,1)`` per sample (``alpha`` is ``[N]``)."""
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1, 1, 1, 1])
    return alpha * real + (1.0 - alpha) * fake


def classification_cross_entropy(labels, logits):
    """Per-example sparse softmax cross-entropy, always computed in float32."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)
    )


@keras.saving.register_keras_serializable(package="hvitgan_tf")
class TemperatureWeightedLoss(keras.layers.Layer):
    """Learned per-task weighting of several losses (docs/method.md §4, "multi-loss weighing").

    Holds one trainable scalar per task. ``call(losses)`` returns ``(total, log_variances)``:

    - ``temperature`` (the method's default): an unbounded ``s_i`` (init 0) acting as the
      log-temperature of task i's softmax; ``L_i = exp(-s_i) * CE_i + s_i / 2``. This is Kendall
      et al.'s classification bound ``CE(f/T) ≈ CE(f)/T + log(T)/2`` with ``T = exp(s)``, so the
      cross-entropy is taken on the raw logits and the temperature enters only through the
      weight and the regulariser that keeps ``T`` from growing without bound.
    - ``kendall``: ``σ_i = softplus(ρ_i) > 0`` (init σ = 1), ``L_i = CE_i / (2σ²) + log σ``.
    - ``none``: the plain sum (AC-GAN + WGAN-GP); the layer holds no weights.

    ``log_variances`` is ``s_i`` (``log σ_i²`` for ``kendall``, 0 for ``none``), the quantity
    logged every epoch so the modes can be compared on one axis.
    """

    def __init__(self, task_names, mode="temperature", **kwargs):
        # Losses and temperatures stay float32 under mixed precision: exp(-s) * CE in bfloat16
        # would round the weights, and the losses arrive in float32 from the float32 heads.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in LOSS_WEIGHTING_MODES:
            raise ValueError(
                f"loss weighting must be one of {', '.join(LOSS_WEIGHTING_MODES)}, got {mode!r}"
            )
        self.task_names = tuple(task_names)
        self.mode = mode
        self.task_params = []
        if mode != "none":
            # kendall's raw parameter starts where softplus gives sigma = 1 (log sigma = 0).
            start = 0.0 if mode == "temperature" else math.log(math.e - 1.0)
            for name in self.task_names:
                self.task_params.append(
                    self.add_weight(
                        name=f"s_{name}", shape=(), dtype="float32",
                        initializer=keras.initializers.Constant(start), trainable=True,
                    )
                )
        self.built = True

    def log_variances(self):
        """``s_i`` for every task, float32 ``[num_tasks]``."""
        if self.mode == "none":
            return tf.zeros([len(self.task_names)], tf.float32)
        params = tf.stack([tf.convert_to_tensor(p) for p in self.task_params])
        if self.mode == "temperature":
            return params
        sigma = tf.nn.softplus(params)
        return 2.0 * tf.math.log(sigma)

    def call(self, losses, num_replicas=1):
        """``(total, log_variances)``; ``total`` is the sum of :meth:`weighted_terms`."""
        return tf.add_n(self.weighted_terms(losses, num_replicas)), self.log_variances()

    def weighted_terms(self, losses, num_replicas=1):
        """Each task's loss as it enters the total: ``exp(-s_i) CE_i + s_i / 2`` and so on.

        ``losses`` are this replica's shares (sums over local examples / global batch).
        Gradients are summed over replicas, so the regulariser, which does not depend on the
        data, is divided by ``num_replicas`` to be counted once in total.
        """
        losses = [tf.cast(loss, tf.float32) for loss in losses]
        if len(losses) != len(self.task_names):
            raise ValueError(f"expected {len(self.task_names)} losses, got {len(losses)}")
        if self.mode == "none":
            return losses
        terms = []
        for loss, param in zip(losses, self.task_params):
            param = tf.convert_to_tensor(param)
            if self.mode == "temperature":
                terms.append(tf.exp(-param) * loss + 0.5 * param / num_replicas)
            else:
                sigma = tf.nn.softplus(param)
                terms.append(loss / (2.0 * tf.square(sigma)) + tf.math.log(sigma) / num_replicas)
        return terms

    def get_config(self):
        config = super().get_config()
        config.update({"task_names": list(self.task_names), "mode": self.mode})
        return config


def class_boost(share, adversarial_norm, class_norm):
    """The factor ``class_gradient_share`` puts on the class losses' gradient:
    ``clip(share * |g_adv| / |g_class|, 1, MAX_CLASS_BOOST)`` (scaled up, never down)."""
    ratio = share * adversarial_norm / tf.maximum(class_norm, 1e-12)
    return tf.clip_by_value(tf.cast(ratio, tf.float32), 1.0, MAX_CLASS_BOOST)

