"""The learning numbers: each must tell a generator that copies the data from one that collapses."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hvitgan_tf.data import open_source
from hvitgan_tf.evaluation.learning import (RealReference, ReferenceClassifier, class_diversity,
                                            detail, haematoxylin, mean_pairwise_distance,
                                            measure, nuclei, real_arrays, sample_grid,
                                            seam_ratio)
from hvitgan_tf.models import build_discriminator, preset

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


def test_mean_pairwise_distance_and_class_diversity():
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    points = np.array([[0.0], [1.0], [3.0]])  # pairs: 1, 3, 2
    assert mean_pairwise_distance(points) == pytest.approx(2.0)
    assert np.isnan(mean_pairwise_distance(points[:1]))
    labels = np.array([0, 0, 1, 1])
    features = np.array([[0.0], [2.0], [5.0], [5.0]])
    assert class_diversity(features, labels, 2) == [pytest.approx(2.0), pytest.approx(0.0)]


class _Config:
    latent_dim = 8
    image_size = SIZE
    stage_grids = (4, 8, 16, 32)  # the small preset's: seams every 8 pixels


class _CopyingGenerator:
    """Returns real images of the asked class, picked by the noise: as good as a GAN gets."""

    config = _Config()

    def __init__(self, images, labels, collapse=False):
        self.by_class = [images[labels == c] for c in range(int(labels.max()) + 1)]
        self.collapse = collapse

    def __call__(self, inputs, training=False):
        z, y = (np.asarray(t) for t in inputs)
        out = []
        for noise, label in zip(z, y):
            pool = self.by_class[label]
            index = 0 if self.collapse else int(abs(noise[0]) * 1e4) % len(pool)
            out.append(pool[index])
        return np.stack(out)


@pytest.fixture(scope="module")
def demo_reference():
    source = open_source("demo")
    judge = ReferenceClassifier.train(source, SIZE, epochs=3, seed=0, log=lambda *_: None)
    return source, judge, RealReference.build(source, SIZE, judge, tissue=True)


def test_the_numbers_separate_copying_from_collapse(demo_reference):
    source, judge, reference = demo_reference
    assert judge.validation_accuracy > 0.8  # the demo's classes differ by stain colour
    images, labels = real_arrays(source, "train", SIZE)
    discriminator = build_discriminator(preset("tiny", 2).replace(image_size=SIZE).discriminator)

    good = measure(_CopyingGenerator(images, labels), discriminator, reference,
                   samples_per_class=40)
    bad = measure(_CopyingGenerator(images, labels, collapse=True), discriminator, reference,
                  samples_per_class=40)
    assert good["conditioning_accuracy"] > 0.8
    assert 0.7 < good["diversity"] < 1.3 and bad["diversity"] == pytest.approx(0.0, abs=1e-6)
    assert good["fid"] < bad["fid"] and good["kid"] < bad["kid"]
    assert 0.8 < good["pixel_std_ratio"] < 1.2
    assert good["noise_effect"] > 0.05 and bad["noise_effect"] == 0.0
    assert good["label_effect"] > 0.05
    assert 0.0 <= good["d_head_accuracy"] <= 1.0
    assert len(good["conditioning_accuracy_per_class"]) == 2
    # Real patches carry as much fine detail as real patches and no seams on an 8-pixel grid.
    assert 0.8 < good["detail_ratio"] < 1.25
    assert 0.8 < good["seam_ratio"] < 1.25 and 0.8 < good["seam_ratio_real"] < 1.25
    # Real patches hold as many nuclei as real patches; a blurred copy of them far fewer.
    assert good["nuclei_per_patch_real"] > 1.0
    assert 0.75 < good["nuclei_ratio"] < 1.33 and 0.75 < good["nuclei_area_ratio"] < 1.33
    blurred = measure(_BlurringGenerator(_CopyingGenerator(images, labels)), discriminator,
                      reference, samples_per_class=40)
    assert blurred["nuclei_ratio"] < 0.6 * good["nuclei_ratio"]
    assert len(good["nuclei_ratio_per_class"]) == 2
    assert all(0.6 < r < 1.6 for r in good["nuclei_ratio_per_class"])
    assert all(b < g for b, g in zip(blurred["nuclei_ratio_per_class"],
                                     good["nuclei_ratio_per_class"]))


class _BlurringGenerator:
    """Another generator's images, smoothed by a Gaussian of 1.5 pixels."""

    config = _Config()

    def __init__(self, generator):
        self.generator = generator

    def __call__(self, inputs, training=False):
        from hvitgan_tf.training.gan import gaussian_blur

        return gaussian_blur(np.asarray(self.generator(inputs), np.float32), 1.5).numpy()


def _stained(h_density):
    """``[N, S, S, 3]`` images in [-1, 1] with this haematoxylin optical density per pixel."""
    from skimage.color import hed2rgb

    hed = np.zeros(h_density.shape + (3,))
    hed[..., 0] = h_density
    return hed2rgb(hed) * 2.0 - 1.0


def test_nuclei_counts_blobs_not_specks_or_haze():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    density = np.zeros((3, SIZE, SIZE))
    for cy, cx in ((8, 8), (8, 24), (24, 16)):  # three discs of radius 3 in image 0
        density[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] = 0.3
    density[1][::4, ::4] = 0.3  # 64 isolated specks in image 1
    density[2] = 0.05  # an even haze in image 2
    images = _stained(density)
    np.testing.assert_allclose(haematoxylin(images), density, atol=0.02)
    found = nuclei(images, threshold=0.1)
    assert found["per_patch"] == pytest.approx(1.0)  # (3 + 0 + 0) / 3
    assert found["area"] == pytest.approx(29.0)  # a disc of radius 3 covers 29 pixels
    assert nuclei(images[1:], threshold=0.1) == {"per_patch": 0.0, "area": 0.0}
    by_class = nuclei(images, threshold=0.1, labels=np.array([1, 0, 0]), num_classes=2)
    assert by_class["per_class"] == [pytest.approx(0.0), pytest.approx(3.0)]


def test_only_tissue_references_count_nuclei(demo_reference):
    _, judge, _ = demo_reference
    spec = importlib.util.spec_from_file_location("learning_benchmark",
                                                  ROOT / "benchmarks" / "learning.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.measures_nuclei("auto", "demo")
    assert benchmark.measures_nuclei("auto", "pcam-h5:/data/pcam")
    assert not benchmark.measures_nuclei("auto", "glyphs")
    assert benchmark.measures_nuclei("on", "glyphs")
    assert not benchmark.measures_nuclei("off", "demo")
    source = open_source("demo")
    plain = RealReference.build(source, SIZE, judge)
    images, labels = real_arrays(source, "validation", SIZE)
    discriminator = build_discriminator(preset("tiny", 2).replace(image_size=SIZE).discriminator)
    record = measure(_CopyingGenerator(images, labels), discriminator, plain, samples_per_class=5)
    assert plain.nuclei_threshold is None and not any(k.startswith("nuclei") for k in record)


def test_texture_numbers_tell_squares_and_flat_fields_from_texture():
    rng = np.random.default_rng(0)
    texture = rng.uniform(-1, 1, (6, SIZE, SIZE, 3))
    assert seam_ratio(texture, 8) == pytest.approx(1.0, abs=0.1)
    # 8-pixel squares of one colour each, with a little pixel noise on top.
    squares = np.kron(rng.uniform(-1, 1, (6, 4, 4, 3)), np.ones((1, 8, 8, 1)))
    squares += rng.normal(0, 0.02, squares.shape)
    assert seam_ratio(squares, 8) > 5.0
    assert seam_ratio(squares, 16) < seam_ratio(squares, 8)  # every other seam line only
    assert np.isnan(seam_ratio(squares, SIZE))  # no line inside the image
    flat = np.full((2, SIZE, SIZE, 3), 0.3)
    assert detail(flat) == 0.0 and detail(texture) > detail(squares) > 0.0


def test_sample_grid_has_a_row_per_class(demo_reference):
    source, _, _ = demo_reference
    images, labels = real_arrays(source, "validation", SIZE)
    grid = sample_grid(_CopyingGenerator(images, labels), source.class_names, per_class=3)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[1] > 3 * SIZE


def test_paper_settings_undo_every_departure_of_the_small_generator():
    spec = importlib.util.spec_from_file_location("learning_benchmark",
                                                  ROOT / "benchmarks" / "learning.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    small = preset("small", 10)
    assert small.generator.rgb_skips and small.generator.center_tokens
    paper = small.replace(**benchmark.PAPER_MODEL_CHANGES)
    assert not paper.generator.rgb_skips and not paper.generator.center_tokens
    assert paper.generator.stage_widths == (256, 64, 16, 4)
    assert paper.discriminator.minibatch_std_group == 0
    assert small.generator.shuffle_blur and any(small.generator.spatial_noise)
    assert not paper.generator.shuffle_blur and not any(paper.generator.spatial_noise)


def test_learning_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "learning"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "learning.py"), "--data", "demo",
         "--preset", "tiny", "--iterations", "2", "--every", "1", "--samples-per-class", "10",
         "--judge-epochs", "1", "--judge-cache", "", "--set", "batch_size=4",
         "--set", "n_critic=1", "--set", "diffaug=none", "--paper", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "learning.json").read_text())
    assert [r["iteration"] for r in report["records"]] == [0, 1, 2]
    assert report["train"]["batch_size"] == 4 and report["train"]["total_steps"] == 2
    # --paper: the paper's form of each departure, except where --set says otherwise.
    assert report["paper_settings"] and report["train"]["n_critic"] == 1
    assert report["train"]["class_gradient_share"] == 0.0 and report["train"]["lr_g"] == 1e-4
    assert report["train"]["d_class_on_fakes"] is True
    assert report["model"]["discriminator"]["minibatch_std_group"] == 0
    assert report["model"]["generator"]["rgb_skips"] is False
    assert set(report["summary"]) >= {"conditioning_accuracy", "fid", "diversity",
                                      "d_head_accuracy", "fid_ratio_to_first", "detail_ratio",
                                      "seam_ratio", "seam_ratio_real", "nuclei_ratio",
                                      "nuclei_area_ratio"}
    for name in ("grid_00000.png", "grid_00002.png", "curves.png", "progress.png"):
        assert (out / name).stat().st_size > 0
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["summary"]["iteration"] == 2
    # learning.py hands train() no data_info: run.json still names the selection it trained on.
    data = json.loads((out / "run" / "run.json").read_text())["data"]
    assert (data["spec"], data["seed"], data["limit"], data["fraction"]) == ("demo", 0, None, None)
