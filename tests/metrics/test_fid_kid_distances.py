"""FID and KID formulas (hvitgan_tf.metrics.distances) against closed forms and brute force."""
import numpy as np
import pytest
import scipy.linalg

from hvitgan_tf.metrics.distances import (frechet_distance, kernel_inception_distance,
                                             mmd2_unbiased, polynomial_kernel, psd_sqrt)


def random_covariance(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def reference_frechet(mu1, sigma1, mu2, sigma2):
    """The textbook computation with scipy's general matrix square root of Σ1Σ2."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1 + sigma2 - 2 * covmean)


def test_frechet_distance_matches_scipy_sqrtm_on_exact_parameters():
    rng = np.random.default_rng(1)
    for d in (1, 5, 40):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_covariance(rng, d), random_covariance(rng, d, 3.0)
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(reference_frechet(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_frechet_distance_closed_forms():
    d = 6
    eye = np.eye(d)
    mu = np.arange(d, dtype=float)
    # Same covariance: only the mean term is left.
    assert frechet_distance(mu, eye, mu + 2.0, eye) == pytest.approx(4.0 * d)
    # Commuting covariances a²I and b²I: Tr((a-b)² I) = d (a-b)².
    assert frechet_distance(mu, 4 * eye, mu, 9 * eye) == pytest.approx(d * (2 - 3) ** 2)
    # Symmetric in its arguments and 0 for identical inputs.
    rng = np.random.default_rng(2)
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
    assert frechet_distance(mu, s1, 0 * mu, s2) == pytest.approx(
        frechet_distance(0 * mu, s2, mu, s1), rel=1e-10)
    assert frechet_distance(mu, s1, mu, s1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_handles_singular_covariances():
    """Rank-deficient covariances (fewer samples than dimensions) give a finite, correct value
    where a naive sqrtm of Σ1Σ2 returns complex round-off."""
    rng = np.random.default_rng(3)
    d = 30
    x = rng.normal(size=(10, d))  # rank <= 9 covariance
    y = rng.normal(size=(12, d)) + 0.5
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    assert np.linalg.matrix_rank(s1) < d
    ours = frechet_distance(x.mean(0), s1, y.mean(0), s2)
    # Independent value: 2-Wasserstein via the symmetric form with scipy's sqrtm.
    r1 = scipy.linalg.sqrtm(s1).real
    cross = scipy.linalg.sqrtm(r1 @ s2 @ r1).real
    diff = x.mean(0) - y.mean(0)
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross)
    assert np.isfinite(ours) and ours == pytest.approx(expected, rel=1e-6)
    # Zero covariance on both sides: the distance is the squared mean difference.
    zero = np.zeros((d, d))
    assert frechet_distance(np.ones(d), zero, np.zeros(d), zero) == pytest.approx(d)


def test_psd_sqrt_squares_back():
    rng = np.random.default_rng(4)
    s = random_covariance(rng, 8)
    root = psd_sqrt(s)
    np.testing.assert_allclose(root @ root, s, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(root, root.T)


def test_frechet_distance_of_samples_approaches_the_gaussians_closed_form():
    """FID of two large Gaussian samples = the analytic distance, within sampling error."""
    rng = np.random.default_rng(5)
    d, n = 4, 200_000
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.25, 0.0])
    s1 = random_covariance(rng, d)
    s2 = random_covariance(rng, d, 2.0)
    exact = frechet_distance(mu1, s1, mu2, s2)
    x = rng.multivariate_normal(mu1, s1, size=n)
    y = rng.multivariate_normal(mu2, s2, size=n)
    estimate = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0),
                                np.cov(y, rowvar=False))
    # Sampling error of the statistics is O(1/sqrt(n)) relative (here ~0.5 %).
    assert estimate == pytest.approx(exact, rel=0.02)
    assert exact > 1.0


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


def brute_force_mmd2_unbiased(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_the_pairwise_definition():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2_unbiased(x, y), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (7, 9)


def test_mmd2_estimator_is_unbiased():
    """Averaged over many independent draws from one distribution, the estimate is 0 within its
    standard error, while the biased V-statistic (diagonal kept) is clearly positive."""
    rng = np.random.default_rng(7)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
        unbiased.append(mmd2_unbiased(x, y))
        kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    standard_error = unbiased.std() / np.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 3 * standard_error
    assert biased.mean() > 10 * standard_error


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(8)
    d = 16
    a, b = rng.normal(size=(1500, d)), rng.normal(size=(1500, d))
    same = kernel_inception_distance(a, b, num_subsets=50, subset_size=300, seed=0)
    assert abs(same.mean) < 0.5 * same.std
    shifted = kernel_inception_distance(a, b * 1.3 + 0.3, num_subsets=50, subset_size=300,
                                        seed=0)
    assert shifted.mean > 5 * shifted.std > 0
    # Seeded: the same inputs give the same subsets and value.
    again = kernel_inception_distance(a, b * 1.3 + 0.3, num_subsets=50, subset_size=300, seed=0)
    assert again == shifted
    assert (same.subset_size, same.num_subsets) == (300, 50)


def test_kid_shrinks_the_subset_to_the_smaller_set_and_validates():
    rng = np.random.default_rng(9)
    kid = kernel_inception_distance(rng.normal(size=(50, 3)), rng.normal(size=(30, 3)),
                                    num_subsets=3, subset_size=1000)
    assert kid.subset_size == 30
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same d"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
