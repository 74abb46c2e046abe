"""Classification metrics of the augmentation benchmark (docs/method.md §9), in numpy.

Binary convention: the positive class is label 1 (tumour in PatchCamelyon), and a binary
score is the probability of class 1. Sensitivity = TP / (TP + FN) (recall of tumour),
specificity = TN / (TN + FP) (recall of normal tissue).

ROC AUC is computed from ranks (the Mann-Whitney U statistic): the probability that a random
positive scores above a random negative, ties counting one half. That is exact, O(n log n), and
equal to the area under the ROC curve with ties drawn as diagonal segments.

Also here: ``mean ± std`` aggregation over repeated runs. No scikit-learn needed.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, NamedTuple, Sequence, Tuple

import numpy as np
from scipy.stats import rankdata

POSITIVE_LABEL = 1


def _labels(y_true) -> np.ndarray:
    y = np.asarray(y_true).reshape(-1)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers")
        y = y.astype(np.int64)
    return y


def _pair(y_true, y_other, what: str):
    y_true = _labels(y_true)
    y_other = np.asarray(y_other)
    if len(y_true) != len(y_other):
        raise ValueError(f"{len(y_true)} labels but {len(y_other)} {what}")
    if len(y_true) == 0:
        raise ValueError("no samples")
    return y_true, y_other


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``[C, C]`` int64 counts; row = true class, column = predicted class."""
    y_true, y_pred = _pair(y_true, _labels(y_pred), "predictions")
    if num_classes is None:
        num_classes = int(max(y_true.max(), y_pred.max())) + 1
    if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes})")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, _labels(y_pred), "predictions")
    return float(np.mean(y_true == y_pred))


def sensitivity(y_true, y_pred, positive_label: int = POSITIVE_LABEL) -> float:
    """True-positive rate TP / (TP + FN); NaN when there are no positives."""
    y_true, y_pred = _pair(y_true, _labels(y_pred), "predictions")
    positives = y_true == positive_label
    if not positives.any():
        return float("nan")
    return float(np.mean(y_pred[positives] == positive_label))


def specificity(y_true, y_pred, positive_label: int = POSITIVE_LABEL) -> float:
    """True-negative rate TN / (TN + FP); NaN when there are no negatives."""
    y_true, y_pred = _pair(y_true, _labels(y_pred), "predictions")
    negatives = y_true != positive_label
    if not negatives.any():
        return float("nan")
    return float(np.mean(y_pred[negatives] != positive_label))


def roc_auc(y_true, scores, positive_label: int = POSITIVE_LABEL) -> float:
    """Area under the ROC curve of ``scores`` (higher = more positive), tie-aware.

    ``AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋)`` with ``R₊`` the sum of the positives' ranks among all
    scores, tied scores sharing their average rank. Raises ``ValueError`` if one class is absent.
    """
    y_true, scores = _pair(y_true, np.asarray(scores, np.float64).reshape(-1), "scores")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    positives = y_true == positive_label
    n_pos = int(positives.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative samples")
    ranks = rankdata(scores, method="average")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true, scores, positive_label: int = POSITIVE_LABEL
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)`` for plotting.

    One point per distinct score, thresholds decreasing; a sample counts as positive when its
    score ``>= threshold``. The curve starts at ``(0, 0)`` (threshold +inf) and ends at
    ``(1, 1)``. ``np.trapezoid(tpr, fpr)`` equals ``roc_auc``.
    """
    y_true, scores = _pair(y_true, np.asarray(scores, np.float64).reshape(-1), "scores")
    positives = (y_true == positive_label).astype(np.float64)
    n_pos = positives.sum()
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both positive and negative samples")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    true_positives = np.cumsum(positives[order])
    false_positives = np.cumsum(1.0 - positives[order])
    # The last index of each run of equal scores: all tied samples switch together.
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tpr = np.r_[0.0, true_positives[last_of_run] / n_pos]
    fpr = np.r_[0.0, false_positives[last_of_run] / n_neg]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return fpr, tpr, thresholds


def positive_scores(probabilities, positive_label: int = POSITIVE_LABEL) -> np.ndarray:
    """The positive class's score from ``[N, 2]`` probabilities, or ``[N]`` scores unchanged."""
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim == 2:
        return probabilities[:, positive_label]
    return probabilities.reshape(-1)


def binary_classification_metrics(y_true, probabilities, threshold: float = 0.5,
                                  positive_label: int = POSITIVE_LABEL) -> Dict[str, float]:
    """accuracy, auc, sensitivity, specificity from ``[N, 2]`` probabilities (or ``[N]``
    positive-class scores). A sample is predicted positive when its score ``>= threshold``."""
    scores = positive_scores(probabilities, positive_label)
    y_true = _labels(y_true)
    negative_label = 1 - positive_label if positive_label in (0, 1) else 0
    y_pred = np.where(scores >= threshold, positive_label, negative_label)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "auc": roc_auc(y_true, scores, positive_label),
        "sensitivity": sensitivity(y_true, y_pred, positive_label),
        "specificity": specificity(y_true, y_pred, positive_label),
    }


def macro_roc_auc(y_true, probabilities) -> float:
    """One-vs-rest ROC AUC averaged over classes (``probabilities`` ``[N, C]``).

    Every class must occur in ``y_true`` (and not be the only one), as for a binary AUC.
    """
    probabilities = np.asarray(probabilities, np.float64)
    y_true, probabilities = _pair(y_true, probabilities, "probability rows")
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be [N, C], got {probabilities.shape}")
    return float(np.mean([roc_auc((y_true == c).astype(np.int64), probabilities[:, c])
                          for c in range(probabilities.shape[1])]))


def multiclass_classification_metrics(y_true, probabilities) -> Dict[str, float]:
    """accuracy (arg-max prediction) and macro one-vs-rest AUC from ``[N, C]`` probabilities."""
    probabilities = np.asarray(probabilities, np.float64)
    return {
        "accuracy": accuracy(y_true, probabilities.argmax(axis=1)),
        "auc": macro_roc_auc(y_true, probabilities),
    }


def classification_metrics(y_true, probabilities, threshold: float = 0.5) -> Dict[str, float]:
    """The benchmark's metrics: binary ones for 2 classes (docs/method.md §9), else accuracy + macro
    AUC."""
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim == 1 or probabilities.shape[1] == 2:
        return binary_classification_metrics(y_true, probabilities, threshold)
    return multiclass_classification_metrics(y_true, probabilities)


# -- repeats ----------------------------------------------------------------------------------

class MeanStd(NamedTuple):
    """Mean and sample standard deviation (ddof = 1; 0 for a single run) of ``n`` values."""

    mean: float
    std: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``"0.881 ± 0.012"`` (docs/method.md §9's table format)."""
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def mean_std(values: Iterable[float]) -> MeanStd:
    """Aggregate one metric over repeated runs; NaN runs are ignored (and not counted)."""
    values = np.asarray(list(values), np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return MeanStd(float("nan"), float("nan"), 0)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return MeanStd(float(values.mean()), std, int(values.size))


def summarize_repeats(runs: Sequence[Mapping[str, float]]) -> Dict[str, MeanStd]:
    """``[{metric: value}, ...]`` of several runs -> ``{metric: MeanStd}`` (first run's order)."""
    if not runs:
        raise ValueError("no runs to summarise")
    names = list(runs[0])
    for run in runs[1:]:
        names += [n for n in run if n not in names]
    return {name: mean_std(run.get(name, float("nan")) for run in runs) for name in names}
