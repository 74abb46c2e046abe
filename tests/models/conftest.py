"""Fixtures for the network tests: the tiny preset, built once per test process."""
import pytest


@pytest.fixture(scope="session")
def tiny():
    from hvitgan_tf.models import preset

    return preset("tiny", num_classes=3)


@pytest.fixture(scope="session")
def tiny_generator(tiny):
    """Shared, never modified: tests that change weights build their own."""
    from hvitgan_tf.models import build_generator

    return build_generator(tiny.generator)


@pytest.fixture(scope="session")
def tiny_discriminator(tiny):
    from hvitgan_tf.models import build_discriminator

    return build_discriminator(tiny.discriminator)


@pytest.fixture
def mixed_bfloat16():
    """Run one test under the mixed_bfloat16 policy and always restore the previous one."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
