"""Benchmark classification metrics against hand-made cases and brute force."""
import math

import numpy as np
import pytest

from hvitgan_tf.evaluation.classification_metrics import (
    MeanStd, accuracy, binary_classification_metrics, classification_metrics, confusion_matrix,
    macro_roc_auc, mean_std, roc_auc, roc_curve, sensitivity, specificity, summarize_repeats)


def brute_force_auc(y, scores):
    """P(score of a random positive > score of a random negative), ties count 1/2."""
    pos = scores[y == 1]
    neg = scores[y == 0]
    total = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return total / (len(pos) * len(neg))


def test_roc_auc_equals_the_pairwise_definition_with_and_without_ties():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = rng.integers(5, 60)
        y = rng.integers(0, 2, size=n)
        y[:2] = [0, 1]
        # Coarse scores in half the trials, so that many ties occur.
        scores = rng.normal(size=n) + y
        if trial % 2:
            scores = np.round(scores)
        assert roc_auc(y, scores) == pytest.approx(brute_force_auc(y, scores), abs=1e-12)


def test_roc_auc_extremes_and_errors():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="2 labels but 3"):
        roc_auc([0, 1], [0.2, 0.3, 0.4])


def test_roc_curve_points_and_area():
    y = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    fpr, tpr, thresholds = roc_curve(y, scores)
    # Distinct scores 0.8, 0.4 (three tied samples: 2 neg, 1 pos), 0.35, 0.1.
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(roc_auc(y, scores))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)
    fpr, tpr, _ = roc_curve(y, s)
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(roc_auc(y, s))
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_confusion_sensitivity_specificity_on_a_hand_made_case():
    # 4 tumour (label 1): 3 found, 1 missed; 6 normal: 5 correct, 1 false alarm.
    y_true = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    y_pred = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[5, 1], [1, 3]])
    assert sensitivity(y_true, y_pred) == pytest.approx(3 / 4)
    assert specificity(y_true, y_pred) == pytest.approx(5 / 6)
    assert accuracy(y_true, y_pred) == pytest.approx(8 / 10)
    assert math.isnan(sensitivity([0, 0], [0, 1]))
    assert confusion_matrix([0, 2], [2, 2], num_classes=4).shape == (4, 4)
    with pytest.raises(ValueError, match="labels must be in"):
        confusion_matrix([0, 3], [0, 1], num_classes=2)


def test_binary_metrics_from_probabilities_use_label_one_as_positive():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p1 = np.array([0.9, 0.7, 0.6, 0.2, 0.1, 0.3, 0.4, 0.2, 0.05, 0.8])
    probabilities = np.stack([1 - p1, p1], axis=1)
    metrics = binary_classification_metrics(y, probabilities)
    assert metrics == pytest.approx({
        "accuracy": 0.8, "sensitivity": 0.75, "specificity": 5 / 6,
        "auc": brute_force_auc(y, p1),
    })
    assert classification_metrics(y, probabilities) == metrics
    assert classification_metrics(y, p1) == metrics  # [N] scores work too


def test_multiclass_accuracy_and_macro_auc():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 20)
    logits = rng.normal(size=(60, 3)) + 1.5 * np.eye(3)[y]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = np.mean([brute_force_auc((y == c).astype(int), probabilities[:, c])
                        for c in range(3)])
    assert macro_roc_auc(y, probabilities) == pytest.approx(expected)
    metrics = classification_metrics(y, probabilities)
    assert set(metrics) == {"accuracy", "auc"}
    assert metrics["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == y))


def test_mean_std_over_repeats():
    summary = mean_std([0.87, 0.88, 0.89, float("nan")])
    assert summary.mean == pytest.approx(0.88)
    assert summary.std == pytest.approx(0.01)  # sample std (ddof = 1)
    assert summary.n == 3
    assert summary.format() == "0.880 ± 0.010"
    assert mean_std([0.5]) == MeanStd(0.5, 0.0, 1)
    runs = [{"accuracy": 0.9, "auc": 0.95}, {"accuracy": 0.8, "auc": 0.85}]
    summary = summarize_repeats(runs)
    assert list(summary) == ["accuracy", "auc"]
    assert summary["auc"].mean == pytest.approx(0.9)
    assert summary["auc"].std == pytest.approx(np.std([0.95, 0.85], ddof=1))


def test_numpy_modules_do_not_import_tensorflow():
    """The CLI imports these for --help-time work and reports; TensorFlow takes seconds."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import hvitgan_tf.evaluation, hvitgan_tf.metrics.distances\n"
        "import hvitgan_tf.evaluation.classification_metrics, hvitgan_tf.evaluation.reports\n"
        "import hvitgan_tf.metrics.reference_statistics\n"
        "import hvitgan_tf.metrics.imagenet_weights\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
