"""Packaging for hvitgan-tf.

Runtime dependencies are pinned to the ranges this project is tested with.
tensorflow-addons is deliberately absent: its last release (0.23) pins TF < 2.16 and does not
import under Keras 3, so every op it used to provide is written with core TF / Keras ops here.
"""
import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "hvitgan_tf" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="hvitgan-tf",
    version=VERSION,
    description=(
        "Pure-transformer class-conditional GAN (HViTGAN) for histopathology patches, "
        "with confidence-filtered synthetic augmentation"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["hvitgan_tf", "hvitgan_tf.*", "pipelines", "pipelines.*"]),
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-datasets>=4.9.9,<5",
        # tensorflow-datasets imports it but does not declare it (tensorflow/datasets#11212).
        "importlib_resources>=6",
        "h5py>=3.10",
        "click>=8.1,<9",
        "scikit-image>=0.24",
        "numpy>=1.26",
        "scipy>=1.11",
        "pillow>=10",
        "matplotlib>=3.8",
        "psutil>=5.9",
        # TensorFlow 2.21 no longer pulls it in; tf.summary needs it for the training logs.
        "tensorboard>=2.16",
    ],
    extras_require={
        # apache-beam so that CI runs the Beam pipeline's tests (tests/pipelines) for real.
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "pytest-timeout>=2.3", "apache-beam>=2.60,<3"],
        "beam": ["apache-beam>=2.60,<3"],
        # TFX 1.21 is the release built for TensorFlow 2.21. Its ml-metadata and
        # tensorflow-data-validation wheels need glibc >= 2.39: use Dockerfile.tfx where the
        # host is older (Debian 12 has 2.36).
        "tfx": ["tfx>=1.21,<1.22"],
    },
    entry_points={"console_scripts": ["hvitgan-tf=hvitgan_tf.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
