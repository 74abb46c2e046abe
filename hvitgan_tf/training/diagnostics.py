"""Which loss term drives which weights: per-term gradient norms of one training iteration.

The critic and the class head share every discriminator weight but the two final Dense
layers, and the generator is driven by the critic's score and by the class head at once.
When one term's gradient dwarfs another's in the shared weights, Adam's per-weight step
normalisation gives the small one almost no say: that is how WGAN scores of ±20 kept the
class head at chance (docs/method.md, "Departures from the paper"). These numbers make the
balance visible:

    norms = loss_term_gradient_norms(gan, images, labels)
    norms["discriminator"]["class_real"] / norms["discriminator"]["critic"]

For the discriminator, each term of ``HViTGAN.critic_terms`` is differentiated w.r.t. the
*shared* weights (everything but the class and source heads); for the generator, each term of
``HViTGAN.generator_terms`` w.r.t. all of G's weights. The terms are taken exactly as they
enter the losses (with their learned or fixed weights), on one micro-batch, at the model's
current iteration's random draws. Each side also reports ``adversarial_total`` and
``class_total`` (the gradient norms of the two sums) and ``class_boost``: the factor that
``class_gradient_share`` puts on the class sum (1 in the paper's form), so that
``class_boost * class_total / adversarial_total`` is the class losses' effective share.
"""
from typing import Dict

import tensorflow as tf

from hvitgan_tf.training.losses import class_boost

HEAD_LAYERS = ("class_head", "source_head")


def shared_discriminator_variables(discriminator):
    """Every trainable discriminator weight except those of the class and source heads."""
    heads = {id(v) for name in HEAD_LAYERS
             for v in getattr(discriminator, name).trainable_variables}
    return [v for v in discriminator.trainable_variables if id(v) not in heads]


def _norm(tape, value, variables):
    gradients = [g for g in tape.gradient(value, variables) if g is not None]
    return float(tf.linalg.global_norm(gradients).numpy()) if gradients else 0.0


def _with_totals(terms):
    """The terms plus their two sums (call inside the tape)."""
    return {**terms,
            "adversarial_total": tf.add_n([v for k, v in terms.items()
                                           if not k.startswith("class_")]),
            "class_total": tf.add_n([v for k, v in terms.items() if k.startswith("class_")])}


def _norms(tape, terms, variables, share):
    out = {name: _norm(tape, value, variables) for name, value in terms.items()}
    out["class_boost"] = (float(class_boost(share, out["adversarial_total"], out["class_total"]))
                          if share > 0 else 1.0)
    return out


def loss_term_gradient_norms(gan, images, labels) -> Dict[str, Dict[str, float]]:
    """``{"discriminator": {term: norm}, "generator": {term: norm}}`` for one micro-batch.

    Args:
        gan: an ``HViTGAN``.
        images: float32 ``[B, S, S, 3]`` real images in ``[-1, 1]``; labels ``[B]``.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.cast(tf.convert_to_tensor(labels), tf.int32)
    batch = int(images.shape[0])
    step = gan.iterations_done
    per_example = 1.0 / batch
    critic_draws = gan._draw(step, 0, batch, 0, batch)
    fake = gan.generator([critic_draws["z"], critic_draws["fake_labels"]], training=True)
    shared = shared_discriminator_variables(gan.discriminator)
    share = gan.train_config.class_gradient_share
    with tf.GradientTape(persistent=True) as tape:
        d_terms = _with_totals(gan.critic_terms(images, labels, fake, critic_draws,
                                                per_example)[0])
    d_norms = _norms(tape, d_terms, shared, share)
    del tape

    g_draws = gan._draw(step, gan.train_config.n_critic, batch, 0, batch)
    g_variables = gan.generator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        g_terms = _with_totals(gan.generator_terms(g_draws, per_example)[0])
    g_norms = _norms(tape, g_terms, g_variables, gan.train_config.g_class_gradient_share)
    del tape
    return {"discriminator": d_norms, "generator": g_norms}
