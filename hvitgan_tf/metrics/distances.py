"""Distances between two feature distributions: Fréchet distance (FID) and kernel distance (KID).

Plain numpy in float64, no TensorFlow: the streaming Keras metrics in ``feature_metrics`` call
these same functions from their ``result()``, so there is one implementation of each formula.

FID (Heusel et al. 2017) fits a Gaussian to each feature set and measures

    d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}).

KID (Bińkowski et al. 2018, "Demystifying MMD GANs") is the unbiased estimate of the squared
maximum mean discrepancy under the cubic polynomial kernel ``k(x, y) = (x·y / d + 1)³``, averaged
over random subsets; unlike FID its estimator has no bias that depends on the sample size.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

#: KID subset size (rows per side), as in the KID paper's reference code.
KID_SUBSET_SIZE = 1000
#: KID subsets averaged; 100 like the reference code.
KID_SUBSETS = 100


def _symmetric(matrix: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} contains NaN or infinity (were the features finite?)")
    # Accumulated covariances are symmetric only up to rounding; eigh needs exact symmetry.
    return 0.5 * (matrix + matrix.T)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (float64).

    Eigenvalues that rounding pushed slightly below zero are clipped to zero, so a singular or
    near-singular covariance (fewer samples than dimensions, constant features) is handled.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(_symmetric(matrix, "matrix"))
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr((Σ1 Σ2)^{1/2})`` for symmetric PSD ``Σ1, Σ2``, computed without complex numbers.

    ``Σ1 Σ2`` is not symmetric, and ``scipy.linalg.sqrtm`` of it returns complex round-off and
    can fail on singular inputs. But ``Σ1 Σ2 = A B`` with ``A = Σ1^{1/2}``, ``B = Σ1^{1/2} Σ2``,
    and ``AB`` has the same eigenvalues as ``BA = Σ1^{1/2} Σ2 Σ1^{1/2}``, which is symmetric PSD.
    Those eigenvalues are real and >= 0 (up to rounding, clipped), and the trace of the
    principal square root is the sum of their square roots.
    """
    root1 = psd_sqrt(sigma1)
    inner = _symmetric(root1 @ _symmetric(sigma2, "sigma2") @ root1, "inner product")
    eigenvalues = np.linalg.eigvalsh(inner)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    This is FID when the means and covariances are those of Inception pool features (or any
    other extractor's features). Computed in float64; the result is clipped at 0 because for
    identical statistics rounding can leave a value of order -1e-12.
    """
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    mu2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    sigma1 = _symmetric(sigma1, "sigma1")
    sigma2 = _symmetric(sigma2, "sigma2")
    d = mu1.shape[0]
    if mu2.shape[0] != d or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"shapes do not match: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
        raise ValueError("a mean vector contains NaN or infinity (were the features finite?)")
    diff = mu1 - mu2
    value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
             - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return float(max(value, 0.0))


def polynomial_kernel(x, y, degree: int = 3, coef0: float = 1.0,
                      gamma: Optional[float] = None) -> np.ndarray:
    """``k(x, y) = (gamma · x·y + coef0)^degree`` for all row pairs; ``gamma`` defaults to 1/d."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    base = gamma * (x @ y.T) + coef0
    if int(degree) != degree or degree < 1:
        return base ** degree
    # Repeated products: numpy's general power is several times slower for a small integer.
    result = base.copy()
    for _ in range(int(degree) - 1):
        result *= base
    return result


def mmd2_unbiased(x, y, kernel: Callable = polynomial_kernel) -> float:
    """Unbiased estimate of MMD² between the distributions of the rows of ``x`` and ``y``.

    The within-set terms leave out the diagonal ``k(x_i, x_i)``: including it (the "biased"
    V-statistic) adds a positive offset of order ``E k(x, x) / m`` even for identical
    distributions. Can be negative; its expectation is 0 when both sets come from one law.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx = kernel(x, x)
    k_yy = kernel(y, y)
    k_xy = kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


class KernelDistance(NamedTuple):
    """KID over random subsets: the mean estimate and the spread of the per-subset estimates."""

    mean: float
    std: float
    subset_size: int
    num_subsets: int


def kernel_inception_distance(real_features, fake_features, num_subsets: int = KID_SUBSETS,
                              subset_size: int = KID_SUBSET_SIZE, seed: int = 0,
                              kernel: Callable = polynomial_kernel) -> KernelDistance:
    """KID: unbiased polynomial-kernel MMD² averaged over ``num_subsets`` random subsets.

    Each subset draws ``subset_size`` rows without replacement from each set (fewer when a set is
    smaller: then the size is the smaller set's size). ``seed`` fixes the subsets, so the same
    features always give the same value. ``std`` is the population standard deviation of the
    subset estimates (as in the reference implementations), i.e. the spread of one subset's
    estimate, not the standard error of the mean.
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features must be [N, d] with the same d, got {real.shape} and {fake.shape}"
        )
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    size = min(int(subset_size), len(real), len(fake))
    if size < 2:
        raise ValueError(
            f"KID needs at least 2 real and 2 fake feature vectors, got {len(real)} and "
            f"{len(fake)}"
        )
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets, dtype=np.float64)
    for s in range(num_subsets):
        real_rows = rng.choice(len(real), size, replace=False)
        fake_rows = rng.choice(len(fake), size, replace=False)
        estimates[s] = mmd2_unbiased(real[real_rows], fake[fake_rows], kernel)
    return KernelDistance(float(estimates.mean()), float(estimates.std()), size, num_subsets)
