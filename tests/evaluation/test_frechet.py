"""Fréchet distance against closed forms and the scipy sqrtm reference formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from evaluation.frechet import frechet_distance, frechet_distance_from_features, gaussian_stats


def reference_formula(mu1, s1, mu2, s2):
    # The formula as written in pytorch-fid / StyleGAN-V, without the fallbacks.
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_one_dimensional_closed_form():
    # N(m1, a²) vs N(m2, b²): (m1 - m2)² + (a - b)²
    d = frechet_distance(np.array([1.5]), np.array([[4.0]]), np.array([-0.5]), np.array([[0.25]]))
    assert d == pytest.approx(2.0**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_agrees_with_reference_on_random_features():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    fake = rng.normal(size=(300, 16)) @ rng.normal(scale=0.5, size=(16, 16)) + 0.3
    mu1, s1 = gaussian_stats(real)
    mu2, s2 = gaussian_stats(fake)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_formula(mu1, s1, mu2, s2), rel=1e-6)


def test_identical_sets_give_zero():
    feats = np.random.default_rng(1).normal(size=(50, 8))
    assert abs(frechet_distance_from_features(feats, feats)) < 1e-8


def test_is_symmetric_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
    assert frechet_distance_from_features(a, b) == pytest.approx(frechet_distance_from_features(b, a), rel=1e-6)
    assert frechet_distance_from_features(a, b + 1.0) > frechet_distance_from_features(a, b) + 5.0


def test_stats_match_numpy_cov_and_biased_variant():
    x = np.random.default_rng(3).normal(size=(20, 4))
    mu, s = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(s, np.cov(x, rowvar=False))
    _, s0 = gaussian_stats(x, ddof=0)
    np.testing.assert_allclose(s0, np.cov(x, rowvar=False, bias=True))


def test_singular_covariance_fewer_samples_than_dims_is_finite_and_matches_pytorch_fid():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(5, 32)), rng.normal(size=(5, 32)) + 0.1
    d = frechet_distance_from_features(real, fake)
    assert np.isfinite(d) and d > 0
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    ref = fid_score.calculate_frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))
    assert d == pytest.approx(ref, rel=1e-6)


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in length"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 3)))
