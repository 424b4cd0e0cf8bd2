"""A small Gaussian process for search: Matérn 5/2 with one length-scale per dimension, fitted by MAP.

Inputs live in the unit cube of a :class:`~core.search.SearchSpace`; a ``choice`` dimension holds the
index of its value and is compared by equality (Hamming distance), so its values are unordered. Outputs
are standardized by the caller. The kernel is

    k(x, x') = s · m(d²),  d² = Σ_j ρ_j δ_j(x_j, x'_j),  m(d²) = (1 + √5 d + 5/3 d²) e^(−√5 d)

with ``δ_j`` the squared difference (numeric) or ``[x_j ≠ x'_j]`` (choice), plus a noise variance on the
diagonal (a trial's result depends on its training seed too). The hyperparameters (inverse squared
length-scales ``ρ``, signal variance ``s``, noise ``σ²``) maximize the marginal likelihood times weak
priors that keep a fit on a dozen points sensible: ``ρ`` near 1 (a length-scale about the cube's side),
``s`` near 1, ``σ²`` small. One deterministic L-BFGS-B run from a fixed start, so the same data give the
same model in every process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist

__all__ = ["GaussianProcess", "fit_gp"]

_SQRT5 = math.sqrt(5.0)
#: Added to every covariance diagonal for numerical safety.
_JITTER = 1e-8
#: Smallest noise variance (of standardized outputs) the fit may choose.
_MIN_NOISE = 1e-6
#: Bounds on log ρ: length-scales from about 1/30 to 30 cube sides.
_LOG_RHO = (math.log(1e-3), math.log(1e3))


def _matern(d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn 5/2 of a squared distance, and its derivative with respect to the squared distance."""
    d = np.sqrt(np.maximum(d2, 0.0))
    e = np.exp(-_SQRT5 * d)
    return (1.0 + _SQRT5 * d + (5.0 / 3.0) * d2) * e, (-5.0 / 6.0) * (1.0 + _SQRT5 * d) * e


def _deltas(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Per-dimension squared differences, shape ``(d, len(a), len(b))``; equality for categorical dims."""
    diff = a.T[:, :, None] - b.T[:, None, :]
    out = diff * diff
    out[categorical] = (out[categorical] > 0.0).astype(float)
    return out


def _distance2(a: np.ndarray, b: np.ndarray, rho: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """Weighted squared distances ``d²``, shape ``(len(a), len(b))``, without a ``(d, m, n)`` temporary."""
    num = ~categorical
    scale = np.sqrt(rho[num])
    d2 = cdist(a[:, num] * scale, b[:, num] * scale, "sqeuclidean") if num.any() else 0.0
    for j in np.flatnonzero(categorical):
        d2 = d2 + rho[j] * (a[:, j, None] != b[None, :, j])
    return np.broadcast_to(d2, (len(a), len(b))).astype(float)


@dataclass(frozen=True)
class GaussianProcess:
    """A fitted GP: hyperparameters, training inputs and the Cholesky factor of their covariance.

    Attributes:
        rho: inverse squared length-scale per dimension, shape ``(d,)``.
        signal: signal variance ``s``.
        noise: noise variance ``σ²``.
        x: training inputs, shape ``(n, d)``.
        y: standardized training outputs, shape ``(n,)``.
        categorical: which dimensions are compared by equality, shape ``(d,)``.
    """

    rho: np.ndarray
    signal: float
    noise: float
    x: np.ndarray
    y: np.ndarray
    categorical: np.ndarray

    def kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Covariance between two sets of points, shape ``(len(a), len(b))`` (no noise term)."""
        return self.signal * _matern(_distance2(a, b, self.rho, self.categorical))[0]

    @property
    def _factor(self) -> tuple[np.ndarray, np.ndarray]:
        k = self.kernel(self.x, self.x) + (self.noise + _JITTER) * np.eye(len(self.x))
        chol = cholesky(k, lower=True)
        return chol, cho_solve((chol, True), self.y)

    def posterior(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and joint covariance of the latent function at ``points`` (shape ``(m, d)``)."""
        chol, alpha = self._factor
        cross = self.kernel(points, self.x)
        v = solve_triangular(chol, cross.T, lower=True)
        return cross @ alpha, self.kernel(points, points) - v.T @ v

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the latent function at ``points``, each shape ``(m,)``."""
        chol, alpha = self._factor
        cross = self.kernel(points, self.x)
        v = solve_triangular(chol, cross.T, lower=True)
        var = np.maximum(self.signal - np.einsum("ij,ij->j", v, v), 1e-12)
        return cross @ alpha, np.sqrt(var)

    def sample(self, points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` joint draws of the latent function at ``points``, shape ``(m, n)``."""
        mean, cov = self.posterior(points)
        scale = max(float(np.mean(np.diag(cov))), 1e-12)
        for jitter in (1e-8, 1e-6, 1e-4, 1e-2):
            try:
                chol = cholesky(cov + jitter * scale * np.eye(len(points)), lower=True)
                break
            except np.linalg.LinAlgError:
                continue
        else:  # fall back to independent marginals (never seen in practice)
            chol = np.diag(np.sqrt(np.maximum(np.diag(cov), 1e-12)))
        return mean[:, None] + chol @ rng.standard_normal((len(points), n))

    def condition(self, points: np.ndarray, values: np.ndarray) -> GaussianProcess:
        """The same hyperparameters with ``points`` and ``values`` added to the data (for pending picks)."""
        return GaussianProcess(
            self.rho,
            self.signal,
            self.noise,
            np.vstack([self.x, points]),
            np.concatenate([self.y, values]),
            self.categorical,
        )


def _neg_log_posterior(theta: np.ndarray, deltas: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient in ``theta``.

    ``theta`` = (log ρ_1..d, log s, log σ²).
    """
    d = deltas.shape[0]
    rho, signal, noise = np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1]) + _MIN_NOISE
    d2 = np.tensordot(rho, deltas, axes=1)
    m, dm = _matern(d2)
    n = len(y)
    k = signal * m + (noise + _JITTER) * np.eye(n)
    try:
        chol = cholesky(k, lower=True)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = cho_solve((chol, True), y)
    nll = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(chol)))) + 0.5 * n * math.log(2 * math.pi)
    # d NLL / dθ = ½ tr((K⁻¹ − ααᵀ) dK/dθ)
    w = cho_solve((chol, True), np.eye(n)) - np.outer(alpha, alpha)
    grad = np.empty_like(theta)
    wdm = w * dm
    grad[:d] = 0.5 * signal * rho * np.tensordot(deltas, wdm, axes=([1, 2], [0, 1]))
    grad[d] = 0.5 * signal * float(np.sum(w * m))
    grad[d + 1] = 0.5 * (noise - _MIN_NOISE) * float(np.trace(w))
    # Priors (log densities up to constants): -(0.1/ρ + 0.1ρ); s ~ Gamma(2, 1); σ² ~ Gamma(1.1, 30).
    raw_noise = noise - _MIN_NOISE
    prior = -float(np.sum(0.1 / rho + 0.1 * rho)) + (math.log(signal) - signal)
    prior += 0.1 * math.log(raw_noise) - 30.0 * raw_noise
    grad[:d] -= 0.1 / rho - 0.1 * rho
    grad[d] -= 1.0 - signal
    grad[d + 1] -= 0.1 - 30.0 * raw_noise
    return nll - prior, grad


def fit_gp(x: np.ndarray, y: np.ndarray, categorical: np.ndarray) -> GaussianProcess:
    """Fit the GP's hyperparameters to ``(x, y)`` (``y`` standardized) by MAP; deterministic.

    Args:
        x: inputs in the unit cube (choice dims: the value's index), shape ``(n, d)``.
        y: standardized outputs, shape ``(n,)``.
        categorical: True for dimensions compared by equality, shape ``(d,)``.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(0, 1, 12)[:, None]
        >>> gp = fit_gp(x, np.sin(6 * x[:, 0]), np.array([False]))
        >>> mean, sd = gp.predict(np.array([[0.25]]))
        >>> bool(abs(mean[0] - np.sin(1.5)) < 0.05 and sd[0] < 0.1)
        True
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    categorical = np.asarray(categorical, dtype=bool)
    d = x.shape[1]
    deltas = _deltas(x, x, categorical)
    start = np.concatenate([np.zeros(d), [0.0, math.log(1e-2)]])
    bounds = [_LOG_RHO] * d + [(math.log(1e-2), math.log(1e2)), (math.log(1e-9), math.log(10.0))]
    res = minimize(
        _neg_log_posterior,
        start,
        args=(deltas, y),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 200},
    )
    theta = res.x
    return GaussianProcess(
        np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1]) + _MIN_NOISE, x, y, categorical
    )
