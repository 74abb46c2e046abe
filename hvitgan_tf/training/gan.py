"""The HViTGAN training model: G, D, the EMA generator and the learned loss weights, with a
``train_step`` that reads like docs/method.md §4.

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
import math

import keras
import numpy as np
import tensorflow as tf

from hvitgan_tf.errors import UserError
from hvitgan_tf.models import build_discriminator, build_generator
from hvitgan_tf.models import flops as model_flops
from hvitgan_tf.training import losses as L
from hvitgan_tf.training.diagnostics import shared_discriminator_variables
from hvitgan_tf.training.diffaugment import DiffAugment
from hvitgan_tf.training.optimizers import FusedAdam

# Purposes that key the stateless random streams of one iteration (any distinct ints work).
_NOISE, _FAKE_LABELS, _ALPHA, _AUG_REAL, _AUG_FAKE, _AUG_MIX, _AUG_CLASS = range(7)

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
    # CE_3: D's cross-entropy on fakes. With a separate class view (class_diffaug) and CE_3 off,
    # this and acc_fake are measured on the critic's (translated) batch, ce_real and acc_real
    # on the class view: compare the two pairs with that in mind.
    "ce_fake_d",
    "ce_fake_g",  # CE_1: G's cross-entropy on fakes
    "acc_real",  # class-head accuracy on reals
    "acc_fake",  # class-head accuracy on fakes (w.r.t. the requested label)
    "s_ce_fake_g",  # s_1
    "s_ce_real",  # s_2
    "s_ce_fake_d",  # s_3
    "class_boost_d",  # factor on the class losses' gradient in D (class_gradient_share)
    "class_boost_g",  # the same in G
)
#: Logged only with mode seeking on, so that the columns of metrics.csv of a run started
#: without it (and of every run saved before it existed) stay the same on resume.
MODE_SEEKING_METRIC = "ms_ratio"  # mean |G(z1, y) - G(z2, y)| / |z1 - z2| over the pairs


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
        # The class losses' own view of the images (class_diffaug), or None: the critic's.
        self.class_augment = (DiffAugment(train_config.class_diffaug)
                              if train_config.separate_class_view else None)
        group = model_config.discriminator.minibatch_std_group
        if train_config.mode_seeking and train_config.batch_size % 2:
            raise UserError(f"--mode-seeking pairs the generated images two by two: batch_size "
                            f"{train_config.batch_size} must be even (per device); or "
                            f"turn it off with --mode-seeking 0")
        if group and train_config.batch_size % group:
            raise UserError(f"batch_size {train_config.batch_size} must be a multiple of the "
                            f"discriminator's minibatch_std_group {group} (per device), so "
                            f"that no group mixes real and generated images")

        mode = train_config.loss_weighting
        adv = ("adversarial",) if train_config.weight_adversarial else ()
        # s_1 belongs to G's optimiser, s_2 and s_3 to D's (docs/method.md §4).
        self.g_task_weights = L.TemperatureWeightedLoss(
            adv + ("ce_fake_g",), mode=mode, name="g_task_weights")
        # Without d_class_on_fakes the class head learns from real images only; CE_3 is still
        # measured and logged, but it has no term and no s_3.
        d_class = ("ce_real", "ce_fake_d") if train_config.d_class_on_fakes else ("ce_real",)
        self.d_task_weights = L.TemperatureWeightedLoss(
            adv + d_class, mode=mode, name="d_task_weights")

        clip = None  # clipping is done by hand, across replicas (see _clip)
        self.g_optimizer = FusedAdam(
            train_config.lr_g, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
            global_clipnorm=clip, name="g_adam")
        self.d_optimizer = FusedAdam(
            train_config.lr_d, beta_1=train_config.beta_1, beta_2=train_config.beta_2,
            global_clipnorm=clip, name="d_adam")

        names = METRIC_NAMES + ((MODE_SEEKING_METRIC,) if train_config.mode_seeking else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
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
        # Slot variables must exist before fit() enters a replica context (docs/keras3-notes.md
        # §2.2).
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
        if self.class_augment is not None:  # reals then fakes, one draw
            both = self.class_augment.sample_params(2 * global_batch, size,
                                                    self._seed(step, _AUG_CLASS, micro))
            draws["aug_class_real"] = DiffAugment.slice_params(both, 0, global_batch)
            draws["aug_class_fake"] = DiffAugment.slice_params(both, global_batch,
                                                               2 * global_batch)
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
        # G does not change during the n_critic critic updates (docs/method.md §4), so the fakes of
        # all of them come from ONE generator call on n_critic x b samples: the same numbers,
        # matmuls n_critic times taller, and one generator subgraph to trace instead of n_critic.
        fakes = self.generator([tf.concat([d["z"] for d in critic_draws], 0),
                                tf.concat([d["fake_labels"] for d in critic_draws], 0)],
                               training=True)
        fakes = tf.split(tf.cast(fakes, images.dtype), cfg.n_critic, axis=0)
        # 0 during the class warm-up (the critic's class head learns alone, G waits), else 1.
        adversarial_on = tf.cast(step >= cfg.class_warmup, tf.float32)
        critic_gradients = self._critic_gradients_function(replicas)
        for micro, (draws, fake) in enumerate(zip(critic_draws, fakes)):
            gradients, d_stats = critic_gradients(images[:, micro], labels[:, micro], fake,
                                                  draws, per_example, replicas, adversarial_on)
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
        stats.update(self._generator_update(draws, per_example, replicas, adversarial_on))
        self._update_ema()

        # Per-replica shares are averaged by the metrics; multiply back (docs/keras3-notes.md §2.3).
        for name, value in stats.items():
            # Loss weights and boosts are the same on every replica, not per-replica shares.
            scale = 1.0 if name.startswith(("s_", "class_boost")) else float(replicas)
            self.trackers[name].update_state(value * scale)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _critic_gradients_function(self, replicas):
        """What computes one critic update's gradients: a nested ``tf.function`` on one device.

        The critic graph (forward, backward and the penalty's double backward) is by far the
        largest part of the step. As a nested function it is traced once and called n_critic
        times, instead of being rebuilt by Python n_critic times: the step traces several times
        faster. Under a multi-replica strategy the loss all-reduces the real scores (drift
        term), a synchronisation point that TensorFlow refuses inside a nested function, so
        there the graph stays unrolled (docs/keras3-notes.md §2.2).
        """
        if replicas > 1:
            return self._critic_gradients
        if self._traced_critic_gradients is None:
            self._traced_critic_gradients = tf.function(self._critic_gradients, autograph=False)
        return self._traced_critic_gradients

    def _critic_gradients(self, real, labels, fake, draws, per_example, replicas,
                          adversarial_on=None):
        """Gradients of L_D (docs/method.md §4) w.r.t. ``d_variables`` for one critic micro-batch,
        and the logged terms (this replica's shares). ``adversarial_on`` (a 0/1 scalar, 1 when
        None) multiplies the adversarial terms: 0 during the class warm-up."""
        share = self.train_config.class_gradient_share
        with tf.GradientTape(persistent=share > 0) as tape:
            terms, stats = self.critic_terms(real, labels, fake, draws, per_example, replicas)
            adversarial, classes = _adversarial_and_class_sums(terms)
            if adversarial_on is not None:
                adversarial = adversarial * adversarial_on
            d_loss = adversarial + classes
        if not share:
            return tape.gradient(d_loss, self.d_variables), {
                "d_loss": d_loss, "class_boost_d": tf.constant(1.0), **stats}
        # The competition is in the shared weights: both gradients in full, then combined.
        g_adv = tape.gradient(adversarial, self.d_variables)
        g_cls = tape.gradient(classes, self.d_variables)
        del tape
        shared = self._shared_d_positions
        boost = self._boost_from_norms([g_adv[i] for i in shared], [g_cls[i] for i in shared],
                                       share)
        gradients = [_add(a, None if c is None else c * boost) for a, c in zip(g_adv, g_cls)]
        d_loss = adversarial + boost * classes
        return gradients, {"d_loss": d_loss, "class_boost_d": boost, **stats}

    @property
    def _shared_d_positions(self):
        """Positions in ``d_variables`` of the discriminator's shared weights (not its heads,
        not the loss weights): where the critic and the class head compete."""
        shared = {id(v) for v in shared_discriminator_variables(self.discriminator)}
        return [i for i, v in enumerate(self.d_variables) if id(v) in shared]

    def _boost_from_norms(self, adversarial_gradients, class_gradients, share):
        """``losses.class_boost`` of gradients summed over replicas (so one device and N
        replicas scale alike); a constant to the optimiser."""
        def norm(gradients):
            return tf.linalg.global_norm([self._global_sum(g) for g in gradients
                                          if g is not None])

        return tf.stop_gradient(L.class_boost(share, norm(adversarial_gradients),
                                              norm(class_gradients)))

    def _class_boost(self, tape, adversarial, classes, probe):
        """The generator's boost, measured on the gradients w.r.t. the generated images
        ``probe``: every generator weight receives both losses through those images (by the
        same Jacobian), so their ratio there stands in for the ratio at the weights, for two
        backward passes through the discriminator only.
        """
        return self._boost_from_norms(tape.gradient(adversarial, probe),
                                      tape.gradient(classes, probe),
                                      self.train_config.g_class_gradient_share)

    def critic_terms(self, real, labels, fake, draws, per_example, replicas=1):
        """The terms of L_D for one critic micro-batch, each as it enters the sum, and the
        logged values: ``({name: scalar}, stats)``. ``L_D = sum(terms.values())``.

        Terms: ``critic`` (E[D(x̃)] - E[D(x)]; with ``adversarial_loss = "logistic"`` the
        logistic loss), ``gradient_penalty`` (λ GP; logistic: γ/2 R1 on the reals), ``drift``
        (ε E[D(x)]²) and the weighted class losses ``class_real`` / ``class_fake``; with
        ``weight_adversarial`` the first three are one weighted ``adversarial`` term.
        Kept apart so that ``hvitgan_tf.training.diagnostics`` can measure the gradient each
        one sends into the shared discriminator weights.
        """
        cfg = self.train_config
        mix = L.interpolate(real, fake, draws["alpha"])
        local = tf.shape(real)[0]
        # Reals and fakes go through A and D as one batch: half the graph, bigger matmuls.
        both_params = tf.nest.map_structure(lambda r, f: tf.concat([r, f], 0),
                                            draws["aug_real"], draws["aug_fake"])

        def critic_score(images, params):
            # The interpolates are scored with the real images' labels (projection critic).
            source, mix_logits = self.discriminator(self.augment.apply(images, params),
                                                    training=True)
            return _project(cfg, source, mix_logits, labels)

        source, logits = self.discriminator(
            self.augment.apply(tf.concat([real, fake], 0), both_params), training=True)
        logits = tf.cast(logits, tf.float32)
        source = _project(cfg, source, logits,
                          tf.concat([tf.cast(labels, tf.int32),
                                     tf.cast(draws["fake_labels"], tf.int32)], 0))
        d_real, d_fake = source[:local], source[local:]
        logits_real, logits_fake = logits[:local], logits[local:]
        if self.class_augment is not None:
            # The class losses' own pass. Without CE_3 it reads the reals only, and the logged
            # accuracy on fakes stays the critic pass's.
            if cfg.d_class_on_fakes:
                class_params = tf.nest.map_structure(
                    lambda r, f: tf.concat([r, f], 0), draws["aug_class_real"],
                    draws["aug_class_fake"])
                class_logits = self._class_logits(tf.concat([real, fake], 0), class_params)
                logits_real, logits_fake = class_logits[:local], class_logits[local:]
            else:
                logits_real = self._class_logits(real, draws["aug_class_real"])
        # docs/method.md §4 drift: ε · (E[D(A(x))])², the square of the *global* mean real score.
        mean_real = self._global_sum(tf.reduce_sum(d_real)) * per_example
        drift_share = tf.square(mean_real) / replicas
        if cfg.adversarial_loss == "logistic":
            # R1: the squared input-gradient norm on the real images, as the critic scores them.
            norms = L.critic_input_gradient_norm(lambda x: critic_score(x, draws["aug_real"]),
                                                 real)
            gp = tf.reduce_sum(tf.square(norms)) * per_example
            critic = tf.reduce_sum(L.logistic_critic_loss(d_real, d_fake)) * per_example
            penalty = 0.5 * cfg.r1_gamma * gp
        else:
            norms = L.critic_input_gradient_norm(lambda x: critic_score(x, draws["aug_mix"]),
                                                 mix)
            gp = tf.reduce_sum(L.gradient_penalty(norms)) * per_example
            critic = tf.reduce_sum(d_fake - d_real) * per_example
            penalty = cfg.gp_weight * gp
        adversarial = {"critic": critic, "gradient_penalty": penalty,
                       "drift": cfg.drift_weight * drift_share}
        adv_d = tf.add_n(list(adversarial.values()))
        ce_real = tf.reduce_sum(L.classification_cross_entropy(labels, logits_real)) \
            * per_example
        ce_fake = tf.reduce_sum(
            L.classification_cross_entropy(draws["fake_labels"], logits_fake)) * per_example
        class_losses = [ce_real, ce_fake] if cfg.d_class_on_fakes else [ce_real]
        if cfg.weight_adversarial:
            weighted_adv, *weighted = self.d_task_weights.weighted_terms(
                [adv_d] + class_losses, num_replicas=replicas)
            terms = {"adversarial": weighted_adv}
            s = self.d_task_weights.log_variances()[1:]
        else:
            weighted = self.d_task_weights.weighted_terms(class_losses, num_replicas=replicas)
            terms = dict(adversarial)
            s = self.d_task_weights.log_variances()
        terms.update(zip(("class_real", "class_fake"), weighted))
        if not cfg.d_class_on_fakes:
            s = tf.concat([s, tf.zeros([1], s.dtype)], 0)  # s_3 is logged as 0
        return terms, {
            "adv_d": adv_d, "gp": gp, "drift": drift_share,
            "d_real": tf.reduce_sum(d_real) * per_example,
            "d_fake": tf.reduce_sum(d_fake) * per_example,
            "ce_real": ce_real, "ce_fake_d": ce_fake,
            "acc_real": _correct(labels, logits_real) * per_example,
            "acc_fake": _correct(draws["fake_labels"], logits_fake) * per_example,
            "s_ce_real": s[0], "s_ce_fake_d": s[1],
        }

    def _class_logits(self, images, params):
        """The class head's logits ``[N, C]`` float32 on the class losses' own view of
        ``images`` (``class_diffaug``)."""
        _, logits = self.discriminator(self.class_augment.apply(images, params), training=True)
        return tf.cast(logits, tf.float32)

    def generator_terms(self, draws, per_example, replicas=1):
        """The terms of L_G, each as it enters the sum (``adversarial``: -E[D(x̃)];
        ``class_fake``: the weighted CE_1), the logged values, and the generated images."""
        cfg = self.train_config
        if cfg.mode_seeking:
            draws = {**draws, "fake_labels": _paired_labels(draws["fake_labels"])}
        fake = self.generator([draws["z"], draws["fake_labels"]], training=True)
        source, logits = self.discriminator(self.augment.apply(fake, draws["aug_fake"]),
                                            training=True)
        score = _project(cfg, source, logits, draws["fake_labels"])
        if cfg.adversarial_loss == "logistic":
            adv_g = tf.reduce_sum(tf.nn.softplus(-score)) * per_example  # non-saturating
        else:
            adv_g = -tf.reduce_sum(score) * per_example
        if self.class_augment is not None:
            logits = self._class_logits(fake, draws["aug_class_fake"])
        ce_g = tf.reduce_sum(
            L.classification_cross_entropy(draws["fake_labels"], logits)) * per_example
        if cfg.weight_adversarial:
            adversarial, class_fake = self.g_task_weights.weighted_terms(
                [adv_g, ce_g], num_replicas=replicas)
            s = self.g_task_weights.log_variances()[1:]
        else:
            (class_fake,) = self.g_task_weights.weighted_terms([ce_g], num_replicas=replicas)
            adversarial = adv_g
            s = self.g_task_weights.log_variances()
        terms = {"adversarial": adversarial, "class_fake": class_fake}
        stats = {"adv_g": adv_g, "ce_fake_g": ce_g, "s_ce_fake_g": s[0]}
        if cfg.mode_seeking:
            # Pairs of neighbouring rows, so a replica's share of the batch holds whole pairs
            # and N replicas compute what one device does; 2 / global batch = 1 / pairs.
            ratios = _mode_seeking_ratios(fake, draws["z"], cfg.mode_seeking_blur)
            per_pair = 2.0 * per_example
            terms["mode_seeking"] = cfg.mode_seeking * per_pair * tf.reduce_sum(
                1.0 / (ratios + MODE_SEEKING_EPSILON))
            stats[MODE_SEEKING_METRIC] = per_pair * tf.reduce_sum(ratios)
        return terms, stats, fake

    def _generator_update(self, draws, per_example, replicas, generator_on=None):
        # Only G's weights: the critic's weights are read in here too, and an auto-watching tape
        # would build (dead) weight gradients for them as well.
        share = self.train_config.g_class_gradient_share
        with tf.GradientTape(watch_accessed_variables=False, persistent=share > 0) as tape:
            tape.watch([v.value for v in self.g_variables])
            terms, stats, fake = self.generator_terms(draws, per_example, replicas)
            adversarial, classes = _adversarial_and_class_sums(terms)
            g_loss = adversarial + classes
        boost = tf.constant(1.0)
        if share:
            boost = self._class_boost(tape, adversarial, classes, [fake])
            with tape:
                g_loss = adversarial + boost * classes
        gradients = tape.gradient(g_loss, self.g_variables)
        del tape
        if generator_on is not None:
            # Zero gradients leave every weight where it is (Adam with beta_1 = 0 steps by m = g;
            # with momentum, m stays 0 while every gradient is 0).
            gradients = [None if g is None else g * tf.cast(generator_on, g.dtype)
                         for g in gradients]
        self.g_optimizer.apply(self._clip(gradients), self.g_variables)
        return {"g_loss": g_loss, "class_boost_g": boost, **stats}


#: Keeps the mode-seeking term finite when two images of a pair coincide.
MODE_SEEKING_EPSILON = 1e-5


def _paired_labels(labels):
    """Labels in which each pair of neighbouring rows asks for the same class
    (``[a, b, c, d] -> [a, a, c, c]``): images ``2k`` and ``2k + 1`` then differ by their
    noise only."""
    n = tf.shape(labels)[0]
    return tf.repeat(labels[0::2], 2)[:n]


def _mode_seeking_ratios(images, z, blur=0.0):
    """``[n // 2]``: mean |x_2k - x_2k+1| / mean |z_2k - z_2k+1| for the pairs of
    :func:`_paired_labels` (the ratio of Mao et al. 2019, "mode seeking" GANs); with ``blur``
    the images are first smoothed by a Gaussian of that many pixels' standard deviation."""
    paired = tf.shape(images)[0] // 2 * 2  # an odd last row has no partner
    images, z = tf.cast(images[:paired], tf.float32), z[:paired]
    if blur:
        images = gaussian_blur(images, blur)
    image_distance = tf.reduce_mean(tf.abs(images[0::2] - images[1::2]), axis=[1, 2, 3])
    z_distance = tf.reduce_mean(tf.abs(z[0::2] - z[1::2]), axis=1)
    return image_distance / z_distance


def gaussian_blur(images, sigma):
    """``[N, H, W, C]`` float32 smoothed by a separable Gaussian of standard deviation
    ``sigma`` pixels, cut at 2.5 sigma and at one pixel less than the image (mirroring can
    pad no further, so a wide blur is weaker on a tiny image), borders mirrored (no dark frame
    from zero padding); differentiable, and the same numbers on every device."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    if min(height, width) < 2:
        return images
    radius = min(int(math.ceil(2.5 * sigma)), height - 1, width - 1)  # >= 1 for sigma > 0
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    along_x = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, channels, 1)))
    along_y = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, channels, 1)))
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                    mode="REFLECT")
    rows = tf.nn.depthwise_conv2d(padded, along_x, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(rows, along_y, [1, 1, 1, 1], "VALID")


def _project(cfg, source, logits, labels):
    """The critic's score ``[N]`` float32: the source head's, plus with ``critic_projection``
    the class head's logit of the image's label (a projection critic whose class embedding is
    the class head's weights), so the WGAN terms themselves ask "a real image of class y?"."""
    score = tf.cast(source[:, 0], tf.float32)
    if not cfg.critic_projection:
        return score
    logits = tf.cast(logits, tf.float32)
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    return score + tf.gather(logits, labels, axis=1, batch_dims=1)


# Random numbers come from integer Philox draws: TensorFlow's float stateless samplers give
# different numbers when XLA compiles them (--jit), the integer path gives the same bits, so a
# run is reproducible from its seed with or without XLA (as DiffAugment's parameters are).
_UNIFORM_BITS = 24
# The largest float32 below 1. The top draw, (2**24 - 1) + 0.5, needs 25 bits and rounds to
# 2**24 in float32, so without this bound u would be exactly 1 once in 2**24 numbers, and
# ndtri(1) = inf: a z with an infinite element, NaN images and a diverged run. With the demo's
# 6,144 noise numbers per iteration that came at iteration 2,732.
_BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def _unit_uniform(shape, seed):
    """float32 uniform on the open interval (0, 1), 24-bit resolution."""
    bits = tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=2 ** _UNIFORM_BITS,
                                       dtype=tf.int32, alg="philox")
    return _bits_to_unit(bits)


def _bits_to_unit(bits):
    """int32 ``bits`` in ``[0, 2**24)`` -> float32 ``(bits + 0.5) / 2**24``, kept below 1 (only
    the top value moves, from 1 to the largest float32 below 1)."""
    unit = (tf.cast(bits, tf.float32) + 0.5) * (2.0 ** -_UNIFORM_BITS)
    return tf.minimum(unit, _BELOW_ONE)


def _categorical(log_prior, count, seed):
    """``count`` int32 labels drawn from ``softmax(log_prior)`` (``[1, C]``) by inverse CDF."""
    cdf = tf.math.cumsum(tf.nn.softmax(log_prior[0]))[:-1]  # [C - 1] inner boundaries
    u = _unit_uniform([count], seed)
    return tf.reduce_sum(tf.cast(u[:, None] > cdf[None, :], tf.int32), axis=1)


def _adversarial_and_class_sums(terms):
    """``(sum of the adversarial terms, sum of the class_* terms)`` of a loss's term dict."""
    adversarial = tf.add_n([v for k, v in terms.items() if not k.startswith("class_")])
    classes = tf.add_n([v for k, v in terms.items() if k.startswith("class_")])
    return adversarial, classes


def _add(a, b):
    """Sum of two gradients where either may be None (a variable one loss does not reach)."""
    if a is None:
        return b
    return a if b is None else a + b


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
#: The second backward pass of D's class losses when ``class_gradient_share`` > 0.
CLASS_GRADIENT_MULTIPLIER = model_flops.ForwardFlops(2, 2)


def class_pass_images(train_config) -> int:
    """Images per critic image of the class losses' own discriminator pass (``iteration_flops``):
    0 when they read the critic's batch, 1 (reals) or 2 (reals and fakes, with CE_3)."""
    if not train_config.separate_class_view:
        return 0
    return 2 if train_config.d_class_on_fakes else 1


def _times(multiplier, forward):
    return (multiplier.weights * forward.weights + multiplier.attention * forward.attention)


def iteration_flops(model_config, batch_size, n_critic, class_gradient_share=0.0,
                    class_view_images=0):
    """Analytic FLOPs of one ``train_step`` (docs/method.md §4) with ``batch_size`` images per
    critic step.

    Per critic step: G forward on the fakes (no gradient), D forward + backward on reals and
    fakes together (2 x batch), the penalty on the interpolates, and with a class-gradient
    floor (``class_gradient_share`` > 0) a second backward pass for the class losses.
    Generator update: G forward + backward, D forward + input gradient. With a separate class
    view (``class_diffaug``), ``class_view_images`` per critic image (1: reals, 2: reals and
    fakes for CE_3) go through D once more, forward and backward, and the generator update
    runs D on its fakes a second time; the class floor's backward then runs through that pass
    alone, so it costs nothing extra. Matrix products only, as in :mod:`hvitgan_tf.models.flops`;
    returns a dict of FLOP counts (ints).
    """
    g = model_flops.generator_forward(model_config.generator)
    d = model_flops.discriminator_forward(model_config.discriminator)
    critic = batch_size * (g.total + 2 * _times(TRAIN_MULTIPLIER, d)
                           + _times(PENALTY_MULTIPLIER, d))
    generator = batch_size * (_times(TRAIN_MULTIPLIER, g) + _times(INPUT_GRADIENT_MULTIPLIER, d))
    if class_view_images:
        critic += batch_size * class_view_images * _times(TRAIN_MULTIPLIER, d)
        generator += batch_size * _times(INPUT_GRADIENT_MULTIPLIER, d)
    elif class_gradient_share > 0:
        critic += batch_size * 2 * _times(CLASS_GRADIENT_MULTIPLIER, d)
    return {
        "generator_forward_per_image": g.total,
        "discriminator_forward_per_image": d.total,
        "critic_step": critic,
        "generator_step": generator,
        "iteration": n_critic * critic + generator,
    }
