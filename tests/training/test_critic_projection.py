"""The projection critic: the label's class logit joins the critic score, in D's and G's losses."""
import pytest
import tensorflow as tf



def _setup(gan_on_one_batch, tiny_train_config, projection):
    config = tiny_train_config.replace(diffaug="none", loss_weighting="none",
                                       critic_projection=projection)
    return gan_on_one_batch(config, seed=1)


def _label_logit(model, images, labels):
    _, logits = model.discriminator(images, training=True)
    return tf.gather(logits, tf.cast(labels, tf.int32), axis=1, batch_dims=1).numpy()


def test_critic_and_generator_terms_add_the_label_logit_only_when_asked(gan_on_one_batch,
                                                                        tiny_train_config):
    plain, real, labels, fake, draws = _setup(gan_on_one_batch, tiny_train_config, False)
    projected, *_ = _setup(gan_on_one_batch, tiny_train_config, True)
    # An untrained class head's logits hardly depend on the image; make them matter, so that
    # the penalty's change below does not hang on which initial weights this process drew.
    head = plain.discriminator.class_head.kernel
    head.assign(head * 50.0)
    projected.set_weights(plain.get_weights())
    per_example = 1.0 / len(labels)

    terms_plain, stats_plain = plain.critic_terms(real, labels, fake, draws, per_example)
    terms_proj, stats_proj = projected.critic_terms(real, labels, fake, draws, per_example)
    real_logit = _label_logit(plain, real, labels)
    fake_logit = _label_logit(plain, fake, draws["fake_labels"])
    # E[D(x~) + l_y~(x~)] - E[D(x) + l_y(x)]: the plain critic term plus the logits' part.
    assert float(terms_proj["critic"]) == pytest.approx(
        float(terms_plain["critic"]) + fake_logit.mean() - real_logit.mean(), rel=1e-4,
        abs=1e-5)
    assert float(stats_proj["d_real"]) == pytest.approx(
        float(stats_plain["d_real"]) + real_logit.mean(), rel=1e-4, abs=1e-5)
    # The class losses themselves do not change.
    assert float(stats_proj["ce_real"]) == pytest.approx(float(stats_plain["ce_real"]))
    # The penalty now constrains the projected score, which has another input gradient.
    assert float(stats_proj["gp"]) != pytest.approx(float(stats_plain["gp"]), rel=1e-3)

    g_plain, _, g_fake = plain.generator_terms(draws, per_example)
    g_proj, _, _ = projected.generator_terms(draws, per_example)
    g_logit = _label_logit(plain, g_fake, draws["fake_labels"])
    assert float(g_proj["adversarial"]) == pytest.approx(
        float(g_plain["adversarial"]) - g_logit.mean(), rel=1e-4, abs=1e-5)


def test_projection_reaches_the_class_head_through_the_critic_term(gan_on_one_batch,
                                                                   tiny_train_config):
    """Without any class loss, the critic term alone trains the class head's weights."""
    model, real, labels, fake, draws = _setup(gan_on_one_batch, tiny_train_config, True)
    head = model.discriminator.class_head.kernel
    with tf.GradientTape() as tape:
        terms, _ = model.critic_terms(real, labels, fake, draws, 1.0 / len(labels))
        critic = terms["critic"]
    gradient = tape.gradient(critic, head)
    assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0

    model.train_config = model.train_config.replace(critic_projection=False)
    with tf.GradientTape() as tape:
        terms, _ = model.critic_terms(real, labels, fake, draws, 1.0 / len(labels))
        critic = terms["critic"]
    assert tape.gradient(critic, head) is None
