"""Fréchet distance between two Gaussians, the standard (pytorch-fid / StyleGAN-V) computation.

    d² = |mu1 - mu2|² + Tr(S1 + S2 - 2 (S1 S2)^½)

with (S1 S2)^½ from `scipy.linalg.sqrtm`. As in pytorch-fid: when the product is singular and
sqrtm returns non-finite values, `eps` is added to both diagonals and the root is taken again; a
small imaginary part (numerical noise) is dropped, a large one is an error.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

log = logging.getLogger(__name__)

# pytorch-fid's tolerance on the diagonal's imaginary part before calling the result wrong.
IMAGINARY_ATOL = 1e-3


def gaussian_stats(features: np.ndarray, *, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features in float64.

    Args:
        features: one row per sample.
        ddof: 1 = unbiased covariance (pytorch-fid's `np.cov`, torchmetrics' FID);
            0 = biased, divided by N (StyleGAN-V's `FeatureStats.get_mean_cov`, used for FVD).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {x.shape[0]}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof}")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - ddof)
    return mu, sigma


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances must both be ({mu1.shape[0]}, {mu1.shape[0]}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Singular product (e.g. fewer samples than dimensions): regularise as pytorch-fid does.
        log.warning("Fréchet distance: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_ATOL):
            raise ValueError(f"matrix square root has a large imaginary component: {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_features(real: np.ndarray, fake: np.ndarray, *, ddof: int = 1, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*gaussian_stats(real, ddof=ddof), *gaussian_stats(fake, ddof=ddof), eps=eps)
