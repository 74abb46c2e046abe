"""class_diffaug: the class losses see their own augmentation of the images, the critic its own."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf.training import losses as L
from hvitgan_tf.training.config import SAME_AS_CRITIC, TrainConfig
from hvitgan_tf.training.gan import HViTGAN


def _setup(gan_on_one_batch, tiny_train_config, class_diffaug, d_class_on_fakes=False):
    # The critic translates; the class losses either see the same batch or clean images.
    config = tiny_train_config.replace(diffaug="translation", class_diffaug=class_diffaug,
                                       loss_weighting="none", d_class_on_fakes=d_class_on_fakes)
    return gan_on_one_batch(config, seed=3)


def _mean_ce(model, images, labels):
    _, logits = model.discriminator(images, training=True)
    return float(tf.reduce_mean(L.classification_cross_entropy(labels, logits)))


def test_class_losses_read_their_own_view_and_the_critic_keeps_its_own(gan_on_one_batch,
                                                                       tiny_train_config):
    own, real, labels, fake, draws = _setup(gan_on_one_batch, tiny_train_config, "none",
                                            d_class_on_fakes=True)
    same, *_ = _setup(gan_on_one_batch, tiny_train_config, SAME_AS_CRITIC,
                      d_class_on_fakes=True)
    same.set_weights(own.get_weights())
    per_example = 1.0 / len(labels)

    _, stats_own = own.critic_terms(real, labels, fake, draws, per_example)
    _, stats_same = same.critic_terms(real, labels, fake, draws, per_example)
    # Clean images for the class losses: CE_2 and CE_3 are the head's on the untouched images.
    assert float(stats_own["ce_real"]) == pytest.approx(_mean_ce(own, real, labels), rel=1e-5)
    assert float(stats_own["ce_fake_d"]) == pytest.approx(
        _mean_ce(own, fake, draws["fake_labels"]), rel=1e-5)
    translated = same.augment.apply(real, draws["aug_real"])
    assert float(stats_same["ce_real"]) == pytest.approx(_mean_ce(same, translated, labels),
                                                         rel=1e-5)
    # The two views really differ, at the precision the equalities above are checked to (with
    # the tiny model's untrained head both CEs sit near ln 2, only a few 1e-4 apart).
    assert not np.allclose(translated.numpy(), real.numpy())
    assert float(stats_own["ce_real"]) != pytest.approx(float(stats_same["ce_real"]), rel=1e-5)
    # The critic's scores do not depend on what the class losses see.
    for name in ("d_real", "d_fake", "gp"):
        assert float(stats_own[name]) == pytest.approx(float(stats_same[name]), rel=1e-5)

    _, g_own, g_fake = own.generator_terms(draws, per_example)
    _, g_same, _ = same.generator_terms(draws, per_example)
    assert float(g_own["ce_fake_g"]) == pytest.approx(
        _mean_ce(own, g_fake, draws["fake_labels"]), rel=1e-5)
    assert float(g_own["adv_g"]) == pytest.approx(float(g_same["adv_g"]), rel=1e-5)
    assert float(g_same["ce_fake_g"]) == pytest.approx(_mean_ce(
        same, same.augment.apply(g_fake, draws["aug_fake"]), draws["fake_labels"]), rel=1e-5)


def test_without_ce3_the_class_pass_reads_reals_only(gan_on_one_batch, tiny_train_config):
    model, real, labels, fake, draws = _setup(gan_on_one_batch, tiny_train_config, "none")
    _, stats = model.critic_terms(real, labels, fake, draws, 1.0 / len(labels))
    assert float(stats["ce_real"]) == pytest.approx(_mean_ce(model, real, labels), rel=1e-5)


def test_the_class_view_is_drawn_from_its_own_stream(tiny_model_config, tiny_train_config):
    """Colour jitter for the class losses must not repeat the critic's: its own seed purpose."""
    config = tiny_train_config.replace(diffaug="color", class_diffaug="color")
    model = HViTGAN(tiny_model_config, config, [16, 16])
    draws = model._draw(tf.constant(0, tf.int64), 0, 8, 0, 8)
    assert draws["aug_class_real"]["brightness"].shape == (8,)
    assert not np.allclose(draws["aug_class_real"]["brightness"],
                           draws["aug_real"]["brightness"])
    assert not np.allclose(draws["aug_class_real"]["brightness"],
                           draws["aug_class_fake"]["brightness"])


def test_defaults_the_paper_and_old_runs():
    assert TrainConfig().class_diffaug == "color" and TrainConfig().separate_class_view
    from hvitgan_tf.training.config import PAPER_TRAIN_SETTINGS

    assert not TrainConfig(**PAPER_TRAIN_SETTINGS).separate_class_view
    # A run saved before the option existed trained on the critic's batch: it resumes so.
    saved = TrainConfig().to_dict()
    del saved["class_diffaug"]
    assert TrainConfig.from_dict(saved).class_diffaug == SAME_AS_CRITIC
