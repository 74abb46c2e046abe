"""The class warm-up: the critic's class head learns alone first, then the GAN starts."""
import numpy as np
import tensorflow as tf

from hvitgan_tf.training.data_stream import make_training_stream, training_examples
from hvitgan_tf.training.gan import HViTGAN


def _fit(model, source, config, iterations):
    stream = make_training_stream(
        tf.distribute.get_strategy(),
        training_examples(source, model.model_config.image_size, config.seed),
        batch_size=config.batch_size, n_critic=config.n_critic)
    return model.fit(stream, epochs=1, steps_per_epoch=iterations, verbose=0, shuffle=False)


def _snapshot(model):
    return {"g": [w.numpy().copy() for w in model.generator.trainable_weights],
            "source_head": model.discriminator.source_head.kernel.numpy().copy(),
            "class_head": model.discriminator.class_head.kernel.numpy().copy()}


def test_warmup_trains_only_the_class_head_then_everything(array_source, tiny_model_config,
                                                         tiny_train_config):
    config = tiny_train_config.replace(class_warmup=2)
    model = HViTGAN(tiny_model_config, config, array_source.class_counts())
    model.compile()
    start = _snapshot(model)
    _fit(model, array_source, config, 2)  # the two warm-up iterations
    warm = _snapshot(model)
    assert all(np.array_equal(a, b) for a, b in zip(start["g"], warm["g"]))
    assert np.array_equal(start["source_head"], warm["source_head"])
    assert not np.array_equal(start["class_head"], warm["class_head"])

    # Iterations 3 and 4: the GAN itself. (Two: the class embedding reaches the images only
    # through the conditional norms' projections, which start at zero, so it first moves in
    # the second generator step.)
    _fit(model, array_source, config, 2)
    after = _snapshot(model)
    assert int(model.iterations_done.numpy()) == 4
    assert all(not np.array_equal(a, b) for a, b in zip(warm["g"], after["g"]))
    assert not np.array_equal(warm["source_head"], after["source_head"])
