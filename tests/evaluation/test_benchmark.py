"""The benchmark's building blocks: rows and arms, the shared training data and augmentation,
synthetic label mapping, run fingerprints and the Markdown report."""
import numpy as np
import pytest
import tensorflow as tf

from hvitgan_tf import imaging
from hvitgan_tf.data import open_source
from hvitgan_tf.errors import UserError
from hvitgan_tf.evaluation import benchmark_arms as bench_arms
from hvitgan_tf.evaluation import benchmark_data as bench_data
from hvitgan_tf.evaluation import reports
from hvitgan_tf.evaluation.classification_metrics import mean_std


def dihedral_variants(image):
    turns = [np.rot90(image, k, axes=(0, 1)) for k in range(4)]
    return turns + [t[:, ::-1] for t in turns]


def test_dihedral_augment_draws_each_of_the_eight_symmetries_per_image():
    images = np.random.default_rng(0).uniform(-1, 1, (64, 5, 5, 3)).astype(np.float32)
    seen = set()
    for key in range(4):
        out = bench_data.dihedral_augment(tf.constant(images), tf.constant([key, 7], tf.int64))
        again = bench_data.dihedral_augment(tf.constant(images), tf.constant([key, 7], tf.int64))
        np.testing.assert_array_equal(out, again)  # keyed by the seed alone
        for image, result in zip(images, out.numpy()):
            matches = [i for i, v in enumerate(dihedral_variants(image))
                       if np.array_equal(v, result)]
            assert len(matches) == 1
            seen.add(matches[0])
    assert seen == set(range(8))


def test_row_titles_follow_the_papers_notation():
    assert bench_arms.row_title("resnet34", bench_arms.REAL) == "ResNet34"
    arm = bench_arms.Arm("cp_sa", bench_arms.aug_title(True, True), "/x")
    assert bench_arms.row_title("hvitgan_head", arm) == "own class head + Aug (CP+SA)"
    assert bench_arms.aug_title(False, True) == "+ Aug (SA, no CP)"
    assert bench_arms.aug_title(True, False) == "+ Aug (CP, no SA)"
    assert bench_arms.aug_title(False, False) == "+ Aug (no CP, no SA)"


def test_arms_and_their_option_errors(tmp_path, tiny_saved_model):
    base, version = tiny_saved_model
    assert bench_arms.plan_arms(str(tmp_path)) == [bench_arms.REAL]
    arms = bench_arms.plan_arms(str(tmp_path), model_dir=base, per_class=5, threshold=0.6,
                                ablations=["no-sa"])
    assert [a.key for a in arms] == ["real", "cp_sa", "cp"]
    assert [a.plan.threshold for a in arms[1:]] == [0.6, 0.0]
    assert arms[1].plan.model_dir == version
    assert arms[2].synthetic_dir == str(tmp_path / "synthetic" / "cp")
    with pytest.raises(UserError, match="not both"):
        bench_arms.plan_arms(str(tmp_path), model_dir=base, synthetic_dir=str(tmp_path))
    with pytest.raises(UserError, match="--model-no-cp"):
        bench_arms.plan_arms(str(tmp_path), model_dir=base, per_class=5, ablations=["no-cp"])
    with pytest.raises(UserError, match="need --model"):
        bench_arms.plan_arms(str(tmp_path), ablations=["no-sa"])
    with pytest.raises(UserError, match="unknown ablation"):
        bench_arms.plan_arms(str(tmp_path), model_dir=base, per_class=5, ablations=["cp"])
    with pytest.raises(UserError, match="trained with class projection"):
        bench_arms.plan_arms(str(tmp_path), model_dir=base, model_no_cp=base, per_class=5)


def test_model_checks_before_any_training():
    bench_arms.check_models(["resnet34", "hvitgan_head"], bench_arms.ClassifierOptions())
    with pytest.raises(UserError, match="unknown classifier"):
        bench_arms.check_models(["vgg16"], bench_arms.ClassifierOptions())
    with pytest.raises(UserError, match="only for densenet169"):
        bench_arms.check_models(["resnet34", "densenet169"],
                                bench_arms.ClassifierOptions(pretrained=True))
    options = bench_arms.ClassifierOptions(width_multiplier=0.25, small_input=True)
    assert options.for_model("resnet50_cbam") == {"width_multiplier": 0.25, "small_input": True}
    assert options.for_model("densenet169") == {}  # Keras's fixed DenseNet takes neither


def write_folder(root, class_names, per_class, size=8):
    rng = np.random.default_rng(0)
    for label, name in enumerate(class_names):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            # Class 0 dark, class 1 bright: the label can be read back from the pixels.
            value = 40 if label == 0 else 220
            image = np.full((size, size, 3), value, np.uint8) + rng.integers(0, 5, (size, size, 3),
                                                                             dtype=np.uint8)
            imaging.save_png(str(folder / f"{i}.png"), image)


def test_synthetic_labels_follow_the_real_class_names_not_the_folder_order(tmp_path):
    write_folder(tmp_path / "fake", ["alpha", "beta"], 3)
    synthetic, mapping = bench_data.synthetic_source(str(tmp_path / "fake"), ["beta", "alpha"])
    assert synthetic.num_examples("train") == 6 and mapping == [1, 0]
    with pytest.raises(UserError, match="gamma"):
        write_folder(tmp_path / "other", ["alpha", "gamma"], 1)
        bench_data.synthetic_source(str(tmp_path / "other"), ["alpha", "beta"])


def test_an_epoch_is_one_pass_over_real_plus_synthetic(tmp_path):
    write_folder(tmp_path / "fake", ["dab_negative", "dab_positive"], 5)
    real = open_source("demo", limit=20, seed=0)
    synthetic = bench_data.synthetic_source(str(tmp_path / "fake"), real.class_names)
    recipe = bench_arms.Recipe(epochs=1, batch_size=8)
    dataset = bench_data.training_dataset(real, 8, recipe, seed=0, synthetic=synthetic)
    epochs = []
    for _ in range(2):
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
        epochs.append((np.concatenate(images), np.concatenate(labels)))
    for images, labels in epochs:
        assert len(labels) == 30 and images.shape[1:] == (8, 8, 3)
        assert np.bincount(labels).tolist() == [
            real.class_counts("train")[0] + 5, real.class_counts("train")[1] + 5]
        # The synthetic images (flat dark / bright squares) keep their labels.
        flat = images.std(axis=(1, 2, 3)) < 0.05
        assert flat.sum() == 10
        assert np.all(labels[flat] == (images[flat].mean(axis=(1, 2, 3)) > 0))
    assert not np.array_equal(epochs[0][1], epochs[1][1])  # reshuffled every epoch


def test_markdown_report_has_the_spec_layout_and_the_setup():
    results = {"ResNet34": {m: mean_std([0.8, 0.9]) for m in
                            ("accuracy", "auc", "sensitivity", "specificity")},
               "ResNet34 + Aug (CP+SA)": {m: mean_std([0.9, 0.95]) for m in
                                          ("accuracy", "auc", "sensitivity", "specificity")}}
    summary = {"config": {"models": ["resnet34"], "repeats": 2, "seed": 0, "image_size": 32,
                          "recipe": {"learning_rate": 1e-3, "batch_size": 64, "epochs": 2,
                                     "augment": True},
                          "classifier_options": {"width_multiplier": 1.0, "small_input": False,
                                                 "pretrained": False},
                          "gan_head": None, "data": {"spec": "demo", "limit": 100, "seed": 0},
                          "class_names": ["neg", "pos"], "num_train_real": 100,
                          "test_class_counts": [40, 50],
                          "arms": [bench_arms.REAL.describe(),
                                   {"key": "cp_sa", "title": "+ Aug (CP+SA)",
                                    "synthetic_dir": "/s", "plan": None}]},
               "synthetic": {"cp_sa": {"images_per_class": {"neg": 50, "pos": 50}}}}
    text = reports.results_markdown(results, summary)
    lines = text.splitlines()
    assert lines[2] == "| model | accuracy | AUC | sensitivity | specificity |"
    assert lines[3] == "|---|---|---|---|---|"
    assert lines[4] == ("| ResNet34 | 0.850 ± 0.071 | 0.850 ± 0.071 | 0.850 ± 0.071 | "
                        "0.850 ± 0.071 |")
    assert lines[5].startswith("| ResNet34 + Aug (CP+SA) | 0.925 ± 0.035 |")
    assert "90 patches" in text and "`pos` (label 1)" in text
    assert "+ 100 synthetic patches (neg 50, pos 50)" in text
    assert "--limit 100" in text
