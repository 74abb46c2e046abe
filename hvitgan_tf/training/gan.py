"""The HViTGAN training model: G, D, the EMA generator and the learned loss weights, with a
``train_step`` that reads like SPEC §4.

One call of ``train_step`` is one *iteration*: ``n_critic`` critic updates, each on its own real
micro-batch, then one generator update. The input batch is therefore shaped
``[batch, n_critic, H, W, 3]`` (see ``hvitgan_tf.training.data_stream``): the batch axis comes
first so that ``tf.distribute`` splits it between replicas, and every replica's micro-batch ``i``
is exactly its slice of the micro-batch ``i`` a single device would see.

Randomness (noise, fake labels, interpolation weights, augmentation parameters) is stateless and
keyed by ``(seed, iteration, purpose)``. Each replica draws the numbers for the whole global batch
and keeps its own rows, so replicas get different numbers, runs are reproducible from the seed,
and N replicas compute exactly what one device computes on the same global batch.
"""
import keras
import tensorflow as tf

from hvitgan_tf.models import build_discriminator, build_generator
from hvitgan_tf.models import flops as model_flops
from hvitgan_tf.training import losses as L
from hvitgan_tf.training.diffaugment import DiffAugment
from hvitgan_tf.training.optimizers import FusedAdam

# Purposes that key the stateless random streams of one iteration (any distinct ints work).
_NOISE, _FAKE_LABELS, _ALPHA, _AUG_REAL, _AUG_FAKE, _AUG_MIX = range(6)

# Loss components tracked every step (name -> description, for the docs and TensorBoard).
METRIC_NAMES = (
    "d_loss",  # L_D: everything the critic minimises
    "g_loss",  # L_G
    "adv_d",  # E[D(x̃)] - E[D(x)] + λ GP + ε drift
    "adv_g",  # -E[D(x̃)]
    "gp",  # E[(||∇D(x̂)|| - 1)^2], before λ
    "drift",  # E[D(x)]^2, before ε
    "d_real",  # critic mean on augmented reals
    "d_fake",  # critic mean on augmented fakes
    "ce_real",  # CE_2: D's cross-entropy on reals
    "ce_fake_d",  # CE_3: D's cross-entropy on fakes
    "ce_fake_g",  # CE_1: G's cross-entropy on fakes
    "acc_real",  # class-head accuracy on reals
    "acc_fake",  # class-head accuracy on fakes (w.r.t. the requested label)
    "s_ce_fake_g",  # s_1
    "s_ce_real",  # s_2
    "s_ce_fake_d",  # s_3
)


class HViTGAN(keras.Model):
    """Trainable wrapper around the two networks (never called like a layer).

    Args:
        model_config: ``hvitgan_tf.models.ModelConfig``.
        train_config: ``hvitgan_tf.training.config.TrainConfig``.
        class_counts: training examples per class; fake labels are drawn from this prior.
    """

    def __init__(self, model_config, train_config, class_counts, **kwargs):
        super().__init__(**kwargs)
        self.model_config = model_config
        self.train_config = train_config
        num_classes = model_config.num_classes
        if len(class_counts) != num_classes:
            raise ValueError(f"{len(class_counts)} class counts for {num_classes} classes")
        counts = tf.constant([max(int(c), 1) for c in class_counts], tf.float32)
        self.class_log_prior = tf.math.log(counts / tf.reduce_sum(counts))[tf.newaxis]

        self.generator = build_generator(model_config.generator, name="generator")
        self.discriminator = build_discriminator(model_config.discriminator,
                                                 name="discriminator")
        self.ema_generator = build_generator(model_config.generator, name="ema_generator")
        self.ema_generator.set_weights(self.generator.get_weights())
        self.ema_generator.trainable = False
        self.augment = DiffAugment(train_config.diffaug)

        mode = train_config.loss_weighting
        adv = ("adversarial",) if train_config.weight_adversarial else ()
        # s_1 belongs to G's optimiser, s_2 and s_3 to D's (SPEC §4).
        self.g_task_weights = L.TemperatureWeightedLoss(
            adv + ("ce_fake_g",), mode=mode, name="g_task_weights")
        self.d_task_weights = L.TemperatureWeightedLoss(
            adv + ("ce_real", "ce_fake_d"), mode=mode, name="d_task_weights")

        clip = None  # clipping is done by hand, across replicas (see _clip)
        self.g_optimizer = FusedAdam(
            train_config.lr_g, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
            global_clipnorm=clip, name="g_adam")
        self.d_optimizer = FusedAdam(
            train_config.lr_d, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
            global_clipnorm=clip, name="d_adam")

        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self._traced_critic_gradients = None  # see _critic_gradients_function
        # The wrapper is never called on data; fit() must not try to build it (keras#20164).
        self.built = True

    # -- set-up ------------------------------------------------------------------------------
    @property
    def g_variables(self):
        return self.generator.trainable_variables + self.g_task_weights.trainable_variables

    @property
    def d_variables(self):
        return self.discriminator.trainable_variables + self.d_task_weights.trainable_variables

    def compile(self, jit_compile=False, **kwargs):
        # Slot variables must exist before fit() enters a replica context (NOTES-KERAS3 §2).
        self.g_optimizer.build(self.g_variables)
        self.d_optimizer.build(self.d_variables)
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def iterations_done(self):
        """Completed iterations (one generator update each); saved with the optimiser."""
        return self.g_optimizer.iterations

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Everything is built in __init__. Under a tf.distribute strategy Keras would read a
        # batch here (opening an extra iterator on the training stream) only to build nothing.
        return None

    def call(self, inputs, training=False):
        raise NotImplementedError("HViTGAN is trained, not called; use .generator / .discriminator")

    # -- randomness ----------------------------------------------------------------------------
    def _seed(self, step, purpose, micro):
        # int32 seeds: with int64 ones beyond the int32 range, the XLA-compiled samplers
        # (--jit) derive other numbers than the graph kernels do; int32 ones agree.
        base = tf.constant([self.train_config.seed % 2 ** 31, 0x5EED], tf.int32)
        seed = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int32))
        return tf.random.experimental.stateless_fold_in(seed, purpose * 64 + micro)

    @staticmethod
    def _replica_rows(global_values, offset, local_batch):
        """This replica's rows of numbers drawn for the global batch."""
        return tf.nest.map_structure(lambda v: v[offset:offset + local_batch], global_values)

    def _draw(self, step, micro, global_batch, offset, local_batch):
        """Noise, fake labels, α and augmentation parameters for one (micro-)step."""
        size = self.model_config.image_size
        latent = self.model_config.latent_dim
        draws = {
            "z": tf.math.ndtri(_unit_uniform([global_batch, latent],
                                             self._seed(step, _NOISE, micro))),
            "fake_labels": _categorical(self.class_log_prior, global_batch,
                                        self._seed(step, _FAKE_LABELS, micro)),
            "alpha": _unit_uniform([global_batch], self._seed(step, _ALPHA, micro)),
            "aug_real": self.augment.sample_params(global_batch, size,
                                                   self._seed(step, _AUG_REAL, micro)),
            "aug_fake": self.augment.sample_params(global_batch, size,
                                                   self._seed(step, _AUG_FAKE, micro)),
            "aug_mix": self.augment.sample_params(global_batch, size,
                                                  self._seed(step, _AUG_MIX, micro)),
        }
        return self._replica_rows(draws, offset, local_batch)

    # -- cross-replica helpers -----------------------------------------------------------------
    @staticmethod
    def _replica_context():
        ctx = tf.distribute.get_replica_context()
        return ctx, (ctx.num_replicas_in_sync if ctx is not None else 1)

    def _global_sum(self, value):
        """Sum of a per-replica tensor over replicas (differentiable)."""
        ctx, replicas = self._replica_context()
        if replicas == 1:
            return value
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)

    def _clip(self, gradients):
        """Global-norm clipping of the gradient *summed over replicas*.

        Keras clips each replica's partial gradient before the all-reduce, which is not the
        global norm; here the norm is taken of the all-reduced gradient and the same factor is
        applied to every replica's share, so the optimiser's sum is the clipped gradient.
        """
        clip = self.train_config.clip_norm
        if not clip:
            return gradients
        total = [self._global_sum(g) for g in gradients]
        norm = tf.linalg.global_norm(total)
        scale = tf.minimum(1.0, clip / tf.maximum(norm, 1e-12))
        return [g * tf.cast(scale, g.dtype) for g in gradients]

    def _update_ema(self):
        """EMA of G's weights, with TF's ``num_updates`` warm-up: decay = min(d, (1+t)/(10+t)).

        The warm-up lets short runs (the CPU demo) sample from a generator that has moved;
        after a few thousand iterations it is the configured decay. Runs in cross-replica
        context because a mirrored variable may only be assigned there.
        """
        t = tf.cast(self.iterations_done, tf.float32)
        step_size = 1.0 - tf.minimum(self.train_config.ema_decay, (1.0 + t) / (10.0 + t))
        # Variables stay float32 under mixed precision, so no casts are needed here.
        pairs = [(e.value, w.value) for e, w in
                 zip(self.ema_generator.weights, self.generator.weights)]

        def move(ema, live):
            # e <- e - (1 - decay) (e - w)  ==  decay * e + (1 - decay) * w, as one kernel.
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=ema.handle, alpha=step_size, delta=ema.read_value() - live)

        def update(strategy):
            for ema, live in pairs:
                strategy.extended.update(ema, move, args=(live,), group=False)

        ctx = tf.distribute.get_replica_context()
        if ctx is None:
            update(tf.distribute.get_strategy())
        else:
            ctx.merge_call(update)

    # -- the iteration ------------------------------------------------------------------------
    # No data-dependent Python control flow below: skipping AutoGraph's source conversion
    # saves a large part of the tracing time of this (big, unrolled) graph.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        images, labels = data  # [b, n_critic, H, W, 3], [b, n_critic]; b = this replica's share
        cfg = self.train_config
        ctx, replicas = self._replica_context()
        local_batch = tf.shape(images)[0]
        global_batch = local_batch * replicas
        replica_id = (tf.cast(ctx.replica_id_in_sync_group, tf.int32)
                      if ctx is not None else tf.constant(0))
        offset = replica_id * local_batch
        per_example = 1.0 / tf.cast(global_batch, tf.float32)  # loss = sum / global batch
        step = self.iterations_done
        stats = {}

        critic_draws = [self._draw(step, micro, global_batch, offset, local_batch)
                        for micro in range(cfg.n_critic)]
        # G does not change during the n_critic critic updates (SPEC §4), so the fakes of all of
        # them come from ONE generator call on n_critic x b samples: the same numbers, matmuls
        # n_critic times taller, and one generator subgraph to trace instead of n_critic.
        fakes = self.generator([tf.concat([d["z"] for d in critic_draws], 0),
                                tf.concat([d["fake_labels"] for d in critic_draws], 0)],
                               training=True)
        fakes = tf.split(tf.cast(fakes, images.dtype), cfg.n_critic, axis=0)
        critic_gradients = self._critic_gradients_function(replicas)
        for micro, (draws, fake) in enumerate(zip(critic_draws, fakes)):
            gradients, d_stats = critic_gradients(images[:, micro], labels[:, micro], fake,
                                                  draws, per_example, replicas)
            self.d_optimizer.apply(self._clip(gradients), self.d_variables)
            for name, value in d_stats.items():
                stats[name] = stats.get(name, 0.0) + value / cfg.n_critic

        draws = self._draw(step, cfg.n_critic, global_batch, offset, local_batch)
        # Nothing in the data flow orders G's forward pass of the generator update after the
        # critic updates (it reads only G's weights), so TensorFlow would start it early and
        # keep its activations alive through all n_critic critic steps: pcam96 at batch 12
        # peaked at 8.8 GiB that way. Its inputs wait for the last critic gradients instead.
        with tf.control_dependencies([g for g in gradients if g is not None]):
            draws = tf.nest.map_structure(tf.identity, draws)
        stats.update(self._generator_update(draws, per_example, replicas))
        self._update_ema()

        # Per-replica shares are averaged by the metrics; multiply back (NOTES-KERAS3 §3).
        for name, value in stats.items():
            scale = 1.0 if name.startswith("s_") else float(replicas)
            self.trackers[name].update_state(value * scale)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _critic_gradients_function(self, replicas):
        """What computes one critic update's gradients: a nested ``tf.function`` on one device.

        The critic graph (forward, backward and the penalty's double backward) is by far the
        largest part of the step. As a nested function it is traced once and called n_critic
        times, instead of being rebuilt by Python n_critic times: the step traces several times
        faster. Under a multi-replica strategy the loss all-reduces the real scores (drift
        term), a synchronisation point that TensorFlow refuses inside a nested function, so
        there the graph stays unrolled (NOTES-KERAS3 §2).
        """
        if replicas > 1:
            return self._critic_gradients
        if self._traced_critic_gradients is None:
            self._traced_critic_gradients = tf.function(self._critic_gradients, autograph=False)
        return self._traced_critic_gradients

    def _critic_gradients(self, real, labels, fake, draws, per_example, replicas):
        """Gradients of L_D (SPEC §4) w.r.t. ``d_variables`` for one critic micro-batch, and
        the logged terms (this replica's shares)."""
        cfg = self.train_config
        mix = L.interpolate(real, fake, draws["alpha"])
        local = tf.shape(real)[0]
        # Reals and fakes go through A and D as one batch: half the graph, bigger matmuls.
        both_params = tf.nest.map_structure(lambda r, f: tf.concat([r, f], 0),
                                            draws["aug_real"], draws["aug_fake"])

        def critic_score(images, params):
            source, _ = self.discriminator(self.augment.apply(images, params), training=True)
            return source

        with tf.GradientTape() as tape:
            source, logits = self.discriminator(
                self.augment.apply(tf.concat([real, fake], 0), both_params), training=True)
            source = tf.cast(source[:, 0], tf.float32)
            logits = tf.cast(logits, tf.float32)
            d_real, d_fake = source[:local], source[local:]
            logits_real, logits_fake = logits[:local], logits[local:]
            norms = L.critic_input_gradient_norm(
                lambda x: critic_score(x, draws["aug_mix"]), mix)
            gp = L.gradient_penalty(norms)
            # SPEC §4 drift: ε · (E[D(A(x))])², the square of the *global* mean real score.
            mean_real = self._global_sum(tf.reduce_sum(d_real)) * per_example
            drift_share = tf.square(mean_real) / replicas
            adv_d = (tf.reduce_sum(d_fake - d_real + cfg.gp_weight * gp) * per_example
                     + cfg.drift_weight * drift_share)
            ce_real = tf.reduce_sum(L.classification_cross_entropy(labels, logits_real)) \
                * per_example
            ce_fake = tf.reduce_sum(
                L.classification_cross_entropy(draws["fake_labels"], logits_fake)) * per_example
            if cfg.weight_adversarial:
                d_loss, s = self.d_task_weights([adv_d, ce_real, ce_fake], num_replicas=replicas)
                s = s[1:]
            else:
                weighted, s = self.d_task_weights([ce_real, ce_fake], num_replicas=replicas)
                d_loss = adv_d + weighted
        gradients = tape.gradient(d_loss, self.d_variables)
        return gradients, {
            "d_loss": d_loss, "adv_d": adv_d,
            "gp": tf.reduce_sum(gp) * per_example,
            "drift": drift_share,
            "d_real": tf.reduce_sum(d_real) * per_example,
            "d_fake": tf.reduce_sum(d_fake) * per_example,
            "ce_real": ce_real, "ce_fake_d": ce_fake,
            "acc_real": _correct(labels, logits_real) * per_example,
            "acc_fake": _correct(draws["fake_labels"], logits_fake) * per_example,
            "s_ce_real": s[0], "s_ce_fake_d": s[1],
        }

    def _generator_update(self, draws, per_example, replicas):
        cfg = self.train_config
        # Only G's weights: the critic's weights are read in here too, and an auto-watching tape
        # would build (dead) weight gradients for them as well.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in self.g_variables])
            fake = self.generator([draws["z"], draws["fake_labels"]], training=True)
            source, logits = self.discriminator(self.augment.apply(fake, draws["aug_fake"]),
                                                training=True)
            adv_g = -tf.reduce_sum(tf.cast(source[:, 0], tf.float32)) * per_example
            ce_g = tf.reduce_sum(
                L.classification_cross_entropy(draws["fake_labels"], logits)) * per_example
            if cfg.weight_adversarial:
                g_loss, s = self.g_task_weights([adv_g, ce_g], num_replicas=replicas)
                s = s[1:]
            else:
                weighted, s = self.g_task_weights([ce_g], num_replicas=replicas)
                g_loss = adv_g + weighted
        gradients = tape.gradient(g_loss, self.g_variables)
        self.g_optimizer.apply(self._clip(gradients), self.g_variables)
        return {"g_loss": g_loss, "adv_g": adv_g, "ce_fake_g": ce_g, "s_ce_fake_g": s[0]}


# Random numbers come from integer Philox draws: TensorFlow's float stateless samplers give
# different numbers when XLA compiles them (--jit), the integer path gives the same bits, so a
# run is reproducible from its seed with or without XLA (as DiffAugment's parameters are).
_UNIFORM_BITS = 24


def _unit_uniform(shape, seed):
    """float32 uniform on the open interval (0, 1), 24-bit resolution."""
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=2 ** _UNIFORM_BITS,
                                       dtype=tf.int32, alg="philox")
    return (tf.cast(bits, tf.float32) + 0.5) * (2.0 ** -_UNIFORM_BITS)


def _categorical(log_prior, count, seed):
    """``count`` int32 labels drawn from ``softmax(log_prior)`` (``[1, C]``) by inverse CDF."""
    cdf = tf.math.cumsum(tf.nn.softmax(log_prior[0]))[:-1]  # [C - 1] inner boundaries
    u = _unit_uniform([count], seed)
    return tf.reduce_sum(tf.cast(u[:, None] > cdf[None, :], tf.int32), axis=1)


def _correct(labels, logits):
    """Number of correct class-head predictions, float32 scalar."""
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int32)), tf.float32))


# Cost of one iteration in multiples of a forward pass (hvitgan_tf.models.flops), per kind of
# product. Backpropagation through ``Y = X W`` costs one product for dX and one for dW; through
# ``q k^T`` or ``P v`` one for each activation operand: 3x the forward either way. The
# gradient penalty runs the forward (1), the input gradient (dX only: 1 for weight products,
# 2 for activation products), then differentiates that two-part graph w.r.t. the weights:
# every product in it gets both operand gradients (2 each). Weight products: 1 + 1 + 2 * 2 = 6;
# activation products: 1 + 2 + 2 * 3 = 9.
TRAIN_MULTIPLIER = model_flops.ForwardFlops(3, 3)
INPUT_GRADIENT_MULTIPLIER = model_flops.ForwardFlops(2, 3)  # D in the generator update
PENALTY_MULTIPLIER = model_flops.ForwardFlops(6, 9)


def _times(multiplier, forward):
    return (multiplier.weights * forward.weights + multiplier.attention * forward.attention)


def iteration_flops(model_config, batch_size, n_critic):
    """Analytic FLOPs of one ``train_step`` (SPEC §4) with ``batch_size`` images per critic step.

    Per critic step: G forward on the fakes (no gradient), D forward + backward on reals and
    fakes together (2 x batch), the penalty on the interpolates. Generator update: G forward +
    backward, D forward + input gradient. Matrix products only, as in
    :mod:`hvitgan_tf.models.flops`; returns a dict of FLOP counts (ints).
    """
    g = model_flops.generator_forward(model_config.generator)
    d = model_flops.discriminator_forward(model_config.discriminator)
    critic = batch_size * (g.total + 2 * _times(TRAIN_MULTIPLIER, d)
                           + _times(PENALTY_MULTIPLIER, d))
    generator = batch_size * (_times(TRAIN_MULTIPLIER, g) + _times(INPUT_GRADIENT_MULTIPLIER, d))
    return {
        "generator_forward_per_image": g.total,
        "discriminator_forward_per_image": d.total,
        "critic_step": critic,
        "generator_step": generator,
        "iteration": n_critic * critic + generator,
    }
