"""Gunther's Universal Scalability Law and its least-squares fit to closed-model steps: a
model of what was measured, not a measurement. Numbers in, numbers out; no printing."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats  # type: ignore[import-untyped]

__all__ = ["UslFit", "UslFitError", "fit_usl", "usl"]


class UslFitError(ValueError):
    """The data cannot carry a USL fit (too few levels, flat, not positive, no convergence)."""


def usl(
    n: float | np.ndarray | Sequence[float], lam: float, sigma: float, kappa: float
) -> np.ndarray:
    """Gunther's Universal Scalability Law: X(N) = lam N / (1 + sigma (N-1) + kappa N (N-1))."""
    n = np.asarray(n, dtype=float)
    result: np.ndarray = lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    return result


@dataclass(frozen=True)
class UslFit:
    """A least-squares USL fit: a model of the measured points, not a measurement.

    ``lam`` is the throughput of one user without contention (units of the data, per s),
    ``sigma`` contention (serialisation, 0..1), ``kappa`` coherency (crosstalk); ``*_se`` are
    their standard errors and ``*_ci`` 95% intervals (t distribution, n - 3 degrees of
    freedom, clipped to the parameters' bounds). ``n_peak`` = sqrt((1 - sigma) / kappa) is
    where the model's throughput peaks (``inf`` with no coherency cost) and ``x_peak`` the
    throughput there (the asymptote lam / sigma when ``n_peak`` is infinite). ``r2`` is the
    fit's R squared.
    """

    lam: float
    sigma: float
    kappa: float
    lam_se: float
    sigma_se: float
    kappa_se: float
    lam_ci: tuple[float, float]
    sigma_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    n_peak: float
    n_peak_se: float
    x_peak: float
    r2: float
    points: int

    def predict(self, n: float | np.ndarray | Sequence[float]) -> np.ndarray:
        return usl(n, self.lam, self.sigma, self.kappa)


MIN_USL_LEVELS = 4
FLAT = 0.01  # throughput varying by less than this share of its mean is flat


def fit_usl(concurrency: Sequence[float], throughput: Sequence[float]) -> UslFit:
    """Fit the USL to throughput measured at several concurrencies (closed-model steps).

    Needs at least four distinct concurrency levels (three parameters and one degree of
    freedom), all positive and finite, and throughput that varies; otherwise a
    :class:`UslFitError` says which. Starting values come from the linearised form
    (lam N / X - 1 = sigma (N-1) + kappa N (N-1), non-negative least squares), then all three
    are fitted together within sigma in [0, 1], kappa >= 0.
    """
    n, x = _points(concurrency, throughput)
    p0 = _usl_start(n, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        try:
            params, cov = optimize.curve_fit(
                usl, n, x, p0=p0, bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]), maxfev=20000
            )
        except (RuntimeError, ValueError) as exc:
            raise UslFitError(f"USL fit did not converge: {exc}") from None
    lam, sigma, kappa = (float(p) for p in params)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.isfinite(cov).all() else np.full(3, np.nan)
    dof = len(n) - 3
    t = float(stats.t.ppf(0.975, dof)) if dof > 0 else math.inf
    ci = [  # within the parameters' own bounds: lam >= 0, sigma in [0, 1], kappa >= 0
        (float(max(p - t * s, 0.0)), float(min(p + t * s, top)))
        for p, s, top in zip(params, se, (math.inf, 1.0, math.inf), strict=True)
    ]
    residual = x - usl(n, lam, sigma, kappa)
    total = float(((x - x.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total
    n_peak, n_peak_se, x_peak = _peak(lam, sigma, kappa, cov)
    return UslFit(
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        lam_se=float(se[0]),
        sigma_se=float(se[1]),
        kappa_se=float(se[2]),
        lam_ci=ci[0],
        sigma_ci=ci[1],
        kappa_ci=ci[2],
        n_peak=n_peak,
        n_peak_se=n_peak_se,
        x_peak=x_peak,
        r2=r2,
        points=len(n),
    )


def _points(
    concurrency: Sequence[float], throughput: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The measured points as arrays, refused with a :class:`UslFitError` saying why when
    they cannot carry a fit."""
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.shape != x.shape or n.ndim != 1:
        raise UslFitError("USL fit: concurrency and throughput must be two equal-length lists")
    if not (np.isfinite(n).all() and np.isfinite(x).all()):
        raise UslFitError("USL fit: concurrency and throughput must be finite numbers")
    if (n < 1).any() or (x <= 0).any():
        raise UslFitError("USL fit: concurrency must be >= 1 and throughput > 0 at every point")
    levels = len(np.unique(n))
    if levels < MIN_USL_LEVELS:
        raise UslFitError(
            f"USL fit needs throughput at {MIN_USL_LEVELS} or more distinct concurrency "
            f"levels; got {levels}"
        )
    spread = (x.max() - x.min()) / x.mean()
    if spread < FLAT:
        raise UslFitError(
            f"USL fit: throughput is flat (it varies by {spread:.2%} across the levels, under "
            f"{FLAT:.0%}): the system was saturated at every level, or the levels were too "
            f"close, so scalability cannot be told apart from noise"
        )
    return n, x


def _usl_start(n: np.ndarray, x: np.ndarray) -> list[float]:
    low = n == n.min()
    lam = float(x[low].mean() / n.min())
    lam = max(lam, float((x / n).max()))  # lam N / X - 1 must not go negative
    design = np.column_stack([n - 1.0, n * (n - 1.0)])
    target = lam * n / x - 1.0
    try:
        (sigma, kappa), _ = optimize.nnls(design, target)
    except (RuntimeError, ValueError):
        sigma, kappa = 0.01, 1e-4
    return [lam, float(min(max(sigma, 0.0), 0.99)), float(max(kappa, 0.0))]


def _peak(lam: float, sigma: float, kappa: float, cov: np.ndarray) -> tuple[float, float, float]:
    """N* = sqrt((1 - sigma) / kappa), its standard error by the delta method, X(N*)."""
    if kappa <= 0 or sigma >= 1:
        asymptote = lam / sigma if sigma > 0 else math.inf
        return math.inf, math.nan, asymptote
    n_peak = math.sqrt((1.0 - sigma) / kappa)
    gradient = np.array([0.0, -1.0 / (2.0 * kappa * n_peak), -n_peak / (2.0 * kappa)])
    variance = float(gradient @ cov @ gradient) if np.isfinite(cov).all() else math.nan
    n_peak_se = math.sqrt(variance) if variance >= 0 else math.nan
    return n_peak, n_peak_se, float(usl(n_peak, lam, sigma, kappa))
