"""Export a training run as a versioned SavedModel for TF Serving and ``hvitgan-tf sample``.

Signatures (docs/method.md §7), all with a ``None`` batch dimension and only core TF ops:

``generate`` (also ``serving_default``)
    ``label`` int32 ``[N]``, ``seed`` int64 ``[N]``, ``truncation`` float32 ``[N]`` ->
    ``images`` uint8 ``[N, S, S, 3]``, ``probabilities`` float32 ``[N, C]``,
    ``confidence`` float32 ``[N]`` (``probabilities[i, label[i]]``).
    The EMA generator draws ``z = truncated_noise(seed, latent_dim, truncation)`` (docs/method.md
    §6.1,
    ``hvitgan_tf.noise``), the image is rounded to uint8, and the discriminator's class head
    scores *that uint8 image*, so ``probabilities`` are exactly what ``classify`` returns for
    the PNG written from ``images``. Bad requests (negative or NaN ψ, a label outside
    ``[0, C)``, inputs of different lengths) fail inside the graph: TF Serving requests never
    pass through the CLI's checks.
``classify``
    ``images`` uint8 ``[N, H, W, 3]`` -> ``probabilities`` float32 ``[N, C]``, ``label`` int32
    ``[N]``. Images of another size are centre-cropped to a square and resized (bilinear,
    antialiased) to the model size, as the training data pipeline does
    (``hvitgan_tf.data.base.to_model_input``).
``features``
    ``images`` uint8 ``[N, H, W, 3]`` -> ``features`` float32 ``[N, F]``: the class-token
    features the class head reads (the offline ``classifier:PATH`` FID extractor, docs/method.md
    §9).
``metadata``
    no inputs -> ``class_names`` string ``[C]``, ``image_size``, ``latent_dim``, ``num_classes``
    int32 scalars, ``json`` string scalar (the whole ``hvitgan.json``).

Why one sample at a time inside the graph: Keras's ``Dense`` on ``[N, T, C]`` tokens runs one
``[N*T, C]`` matmul, and TensorFlow's CPU matmul does not give a row the same bits when it sits
at another position or in a batch of another size (measured: ~1e-8 differences even for a
permutation of the same batch); elementwise kernels (``exp``, ``erf``, the softmax) also treat the
last few elements of a tensor with scalar code. Rounded to uint8, such differences flip a pixel
now and then, so "same (label, seed, ψ) -> same bytes" (docs/method.md §6, §7) would only hold for
the same batch. Running noise, generator, class head and softmax on ``[1, ...]`` slices with
``tf.map_fn`` gives every sample identical shapes and therefore identical bits whatever the
batch; ``PARALLEL_SAMPLES`` slices run concurrently to win back most of the batching speed
(measured on 2 CPU cores: tiny preset ~50 % of batched throughput, small ~90 %). A consequence
worth having: ``classify`` on a written PNG returns bit for bit the ``probabilities`` that
``generate`` returned for it.
"""
from __future__ import annotations

import datetime
import os
import re

from hvitgan_tf import __version__
from hvitgan_tf.errors import UserError
from hvitgan_tf.exported_model import (EXTRA_DIR, FORMAT, FORMAT_VERSION, METADATA_FILE,
                                       SIGNATURES, write_class_names)
from hvitgan_tf.fileio import (NoSpaceLeft, atomic_directory, lock_folder, release_folder,
                               write_json)

#: Samples evaluated concurrently by the per-sample ``tf.map_fn`` of every signature.
PARALLEL_SAMPLES = 16

# Names TF Serving accepts in a URL path segment without escaping, and safe as a folder name.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_model_name(name: str) -> str:
    """``name`` if it is usable as ``saved_models/<name>/`` and in TF Serving's URLs."""
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise UserError(f"model name {name!r} must start with a letter or digit and use only "
                        "letters, digits, '.', '_' and '-' (it becomes a folder and a URL part)")
    return name


def export_run(run_dir, *, export_dir="saved_models", name="hvitgan", version=None,
               checkpoint="best") -> str:
    """Export ``run_dir``'s EMA generator and discriminator as ``export_dir/name/<version>/``.

    Args:
        run_dir: a training run folder (``run.json`` + ``checkpoints/``).
        export_dir: base folder of all exported models.
        name: model name (folder under ``export_dir``; TF Serving's ``MODEL_NAME``).
        version: positive integer; ``None`` takes the next free one (highest existing + 1).
        checkpoint: ``best`` (lowest validation FID; the newest state when no FID was
            computed), ``last``, or the path of a ``.weights.h5`` file.

    Returns the absolute version folder. The export is written into a temporary folder beside
    it and renamed when complete, so TF Serving (which polls the base folder) never sees a
    partial version; an existing version is never overwritten.
    """
    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.runner import load_run

    check_model_name(name)
    run_dir = os.path.abspath(os.fspath(run_dir))
    model_config, train_config, data_info = load_run(run_dir)
    weights = os.path.abspath(checkpoints.resolve(run_dir, checkpoint))
    base = os.path.abspath(os.path.join(os.fspath(export_dir), name))
    lock_folder(base, "export")  # two exports would pick the same next version
    try:
        return _export_into(base, run_dir, model_config, train_config, data_info, weights,
                            name, version, checkpoint)
    finally:
        release_folder(base)


def _export_into(base, run_dir, model_config, train_config, data_info, weights, name, version,
                 checkpoint):
    """The body of :func:`export_run`, with ``base`` locked."""
    target = os.path.join(base, str(_choose_version(base, version)))
    if os.path.exists(target):
        raise UserError(f"{target} already exists; exported versions are never overwritten "
                        "(omit --version to take the next free one)")

    class_names = list(data_info.get("class_names") or [])
    if len(class_names) != model_config.num_classes:
        raise UserError(f"{run_dir}/run.json lists {len(class_names)} class names for a model "
                        f"with {model_config.num_classes} classes")
    class_counts = data_info.get("class_counts") or [1] * model_config.num_classes
    generator, discriminator = _load_networks(model_config, train_config, class_counts,
                                              weights)

    version_number = int(os.path.basename(target))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version_number,
        "class_names": class_names,
        "num_classes": model_config.num_classes,
        "image_size": model_config.image_size,
        "latent_dim": model_config.latent_dim,
        "feature_dim": model_config.discriminator.embed_dim,
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "data": data_info,
        "checkpoint": _checkpoint_record(run_dir, checkpoint, weights),
        "run_dir": run_dir,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "hvitgan_tf_version": __version__,
        "signatures": list(SIGNATURES) + ["serving_default"],
        "noise": "hvitgan_tf.noise.truncated_noise: z row i = Phi^-1 of uniforms from "
                 "stateless Philox keyed by [seed_i, 0x6E6F697A], truncated at +-psi_i",
        "images": "uint8 RGB; generator output x in [-1, 1] -> round((x + 1) * 127.5); the "
                  "networks see uint8 / 127.5 - 1",
    }
    archive = build_archive(generator, discriminator, metadata)
    try:
        with atomic_directory(target) as tmp:
            archive.write_out(tmp, verbose=False)
            extra = os.path.join(tmp, EXTRA_DIR)
            os.makedirs(extra, exist_ok=True)
            write_json(os.path.join(extra, METADATA_FILE), metadata)
            write_class_names(extra, class_names)
            _make_readable(tmp)
    except NoSpaceLeft as error:  # atomic_directory has removed the temporary folder
        raise error.then(f"nothing of version {version_number} was kept, and the versions "
                         f"already in {base} are as they were") from error
    except OSError as error:
        if os.path.exists(target):  # another export took this version meanwhile
            raise UserError(f"{target} appeared while exporting; exported versions are never "
                            "overwritten, export again for the next free version") from None
        raise
    return target


def _load_networks(model_config, train_config, class_counts, weights):
    """``(EMA generator, discriminator)`` of a training checkpoint, in float32.

    Serving runs in float32 whatever the training policy was: mixed_bfloat16 keeps float32
    variables, so the same weights file loads, and the exported images do not depend on
    bfloat16 rounding.
    """
    import keras

    from hvitgan_tf.training import checkpoints
    from hvitgan_tf.training.gan import HViTGAN

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        gan = HViTGAN(model_config, train_config, class_counts)
        gan.compile()  # the weights file holds optimiser state too; its slots must exist
        checkpoints.load_into(gan, weights)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return gan.ema_generator, gan.discriminator


def _choose_version(base, version):
    if version is None:
        # Every integer folder blocks its number, complete SavedModel or not.
        taken = [int(e) for e in os.listdir(base) if e.isdigit()] if os.path.isdir(base) else []
        return max(taken, default=0) + 1
    text = str(version).strip()
    if isinstance(version, bool) or not text.isdigit() or int(text) < 1:
        raise UserError(f"--version must be a positive integer, got {version!r}")
    return int(text)


def _make_readable(folder):
    """Temporary files and folders are created private (0600/0700); a served model must be
    readable by the serving user (e.g. the TF Serving container's)."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for file in files:
            os.chmod(os.path.join(root, file), 0o644)


def _checkpoint_record(run_dir, checkpoint, weights):
    from hvitgan_tf.training import checkpoints

    record = {"requested": str(checkpoint), "path": weights}
    for which in ("best", "last"):
        saved = checkpoints.read_record(run_dir, which)
        if saved is not None and os.path.abspath(saved["path"]) == weights:
            record.update({k: v for k, v in saved.items() if k != "path"}, which=which)
            break
    return record


def build_archive(generator, discriminator, metadata):
    """A ``keras.export.ExportArchive`` with the four signatures of the module docstring.

    ``generator`` is the EMA generator (``G([z, labels]) -> [-1, 1] images``) and
    ``discriminator`` ``D(images, return_features=True) -> (source, logits, features)``.
    """
    import json

    import keras
    import tensorflow as tf

    from hvitgan_tf.data.base import to_model_input
    from hvitgan_tf.imaging import tensor_to_float, tensor_to_uint8
    from hvitgan_tf.noise import truncated_noise

    class_names = list(metadata["class_names"])
    num_classes = len(class_names)
    size = int(metadata["image_size"])
    latent_dim = int(metadata["latent_dim"])
    feature_dim = int(metadata["feature_dim"])
    image_shape = [size, size, 3]

    def model_input(images):
        """uint8 ``[N, h, w, 3]`` of any size -> float32 ``[N, S, S, 3]`` in ``[-1, 1]``."""
        shape = tf.shape(images)
        model_sized = tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size))
        return tf.cond(
            model_sized,
            lambda: tf.ensure_shape(tensor_to_float(images), [None, *image_shape]),
            lambda: tf.ensure_shape(to_model_input(images, size), [None, *image_shape]))

    def per_sample(fn, elems, output_signature):
        # See the module docstring: [1, ...] slices make every sample's bits batch-independent.
        return tf.map_fn(fn, elems, fn_output_signature=output_signature,
                         parallel_iterations=PARALLEL_SAMPLES)

    # The two networks are traced once each, as nested functions every signature calls: the
    # probabilities of `generate` and of `classify` come from the very same graph function, and
    # the export traces in a third of the time. Everything per sample happens inside the
    # per-sample bodies, even the noise and the softmax: TensorFlow's elementwise kernels treat
    # the last few elements of a tensor with scalar code, so an element's bits can depend on
    # the tensor's size.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64),
                                  tf.TensorSpec([None], tf.int32),
                                  tf.TensorSpec([None], tf.float32)])
    def render(seed, label, truncation):
        """Per-sample seeds, labels, ψ ``[N]`` -> uint8 images ``[N, S, S, 3]``."""
        def one(args):
            seed_one, label_one, truncation_one = args
            z = truncated_noise(seed_one[tf.newaxis], latent_dim,
                                truncation_one[tf.newaxis])  # [1, latent_dim]
            image = generator([z, label_one[tf.newaxis]], training=False)  # [1, S, S, 3]
            return tensor_to_uint8(image)[0]

        return per_sample(one, (seed, label, truncation), tf.TensorSpec(image_shape, tf.uint8))

    @tf.function(input_signature=[tf.TensorSpec([None, *image_shape], tf.float32)])
    def score(images):
        """Float images ``[N, S, S, 3]`` -> class probabilities ``[N, C]``, features ``[N, F]``."""
        def one(image):
            _, logits, features = discriminator(image[tf.newaxis], training=False,
                                                return_features=True)
            return tf.nn.softmax(logits, axis=-1)[0], features[0]

        return per_sample(one, images, (tf.TensorSpec([num_classes], tf.float32),
                                        tf.TensorSpec([feature_dim], tf.float32)))

    # Concrete functions: calling them from the signatures adds a call op instead of tracing
    # the networks again for every signature (and twice per signature inside ExportArchive).
    render = render.get_concrete_function()
    score = score.get_concrete_function()

    def generate(label, seed, truncation):
        count = tf.shape(label)[0]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(seed)[0], count,
                message="generate: label, seed and truncation must have the same length"),
            tf.debugging.assert_equal(
                tf.shape(truncation)[0], count,
                message="generate: label, seed and truncation must have the same length"),
            tf.debugging.assert_greater_equal(
                label, 0, message=f"generate: label must be in [0, {num_classes})"),
            tf.debugging.assert_less(
                label, num_classes, message=f"generate: label must be in [0, {num_classes})"),
            # A NaN fails this too (comparisons with NaN are false).
            tf.debugging.assert_greater_equal(
                truncation, 0.0, message="generate: truncation (psi) must be >= 0"),
        ]
        with tf.control_dependencies(checks):
            label = tf.identity(label)
            truncation = tf.identity(truncation)
        images = render(seed, label, truncation)
        # Scored from the uint8 image, exactly as `classify` scores the PNG written from it.
        probabilities, _ = score(tensor_to_float(images))
        return {"images": images, "probabilities": probabilities,
                "confidence": tf.gather(probabilities, label, axis=1, batch_dims=1)}

    def classify(images):
        probabilities, _ = score(model_input(images))
        return {"probabilities": probabilities,
                "label": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}

    def features(images):
        return {"features": score(model_input(images))[1]}

    metadata_json = json.dumps(metadata, sort_keys=True)

    def describe():
        return {"class_names": tf.constant(class_names, tf.string),
                "num_classes": tf.constant(num_classes, tf.int32),
                "image_size": tf.constant(size, tf.int32),
                "latent_dim": tf.constant(latent_dim, tf.int32),
                "json": tf.constant(metadata_json, tf.string)}

    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.track(discriminator)
    # The first endpoint is also published as serving_default.
    archive.add_endpoint("generate", generate, input_signature=[
        tf.TensorSpec([None], tf.int32, name="label"),
        tf.TensorSpec([None], tf.int64, name="seed"),
        tf.TensorSpec([None], tf.float32, name="truncation"),
    ])
    archive.add_endpoint("classify", classify, input_signature=[image_spec])
    archive.add_endpoint("features", features, input_signature=[image_spec])
    archive.add_endpoint("metadata", describe, input_signature=[])
    return archive
