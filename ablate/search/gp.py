"""The Gaussian process the default sampler models results with (`MixtureSampler`): exact, on
the sqrt-share embedding (plus a volume coordinate), with a fence that keeps a diverged result
from flattening the rest of the standardised targets."""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize


class GP:
    """A small exact GP: Matern-5/2 with one length scale for the shares' sqrt-embedding and one
    for the volume coordinate, Gaussian noise, standardised targets; ML-II hyperparameters."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        theta: np.ndarray,
        mean: float,
        scale: float,
        noise: np.ndarray | None = None,
    ):
        self.x, self.theta, self.mean, self.scale = x, theta, mean, scale
        self.yn = (y - mean) / scale
        # per-observation noise variance (standardised units): the learnt level unless given
        self.noise = np.full(len(x), math.exp(theta[-1])) if noise is None else noise
        kxx = self._k(x, x) + np.diag(self.noise + 1e-8)
        self.chol = cho_factor(kxx, lower=True)
        self.alpha = cho_solve(self.chol, self.yn)

    @staticmethod
    def _scaled(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        ls = np.full(x.shape[1], math.exp(theta[0]))
        if len(theta) == 4:  # shares + volume
            ls[-1] = math.exp(theta[1])
        return x / ls

    def _k(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _matern(self._scaled(a, self.theta), self._scaled(b, self.theta), self.theta[-2])

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, volume: bool) -> GP:
        # standardised through y / max|y|: y.std() of a 1e200 squares past the float range
        # (inf), and the GP's predictions were NaN
        top = float(np.abs(y).max()) or 1.0
        mean, scale = float((y / top).mean()) * top, float((y / top).std()) * top or 1.0
        yn = (y - mean) / scale
        n_ls = 2 if volume else 1
        # bounds: length scales (Hellinger-embedding units: corners are sqrt(2) apart),
        # log signal variance, log noise variance (standardised units)
        bounds = [(math.log(0.05), math.log(5.0))] * n_ls + [
            (math.log(0.05), math.log(20.0)),
            (math.log(1e-6), math.log(0.5)),
        ]

        def nll(theta: np.ndarray) -> float:
            xs = cls._scaled(x, theta)
            kxx = _matern(xs, xs, theta[-2]) + (math.exp(theta[-1]) + 1e-8) * np.eye(len(x))
            try:
                c = cho_factor(kxx, lower=True)
            except np.linalg.LinAlgError:
                return 1e10
            a = cho_solve(c, yn)
            return float(0.5 * yn @ a + np.log(np.diag(c[0])).sum())

        best = None
        for ls0 in (0.3, 1.0):
            x0 = np.array([math.log(ls0)] * n_ls + [0.0, math.log(1e-2)])
            res = minimize(nll, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 60})
            if best is None or res.fun < best.fun:
                best = res
        assert best is not None
        return cls(x, y, best.x, mean, scale)

    def condition(self, x_new: np.ndarray, y_new: np.ndarray, noise: float | None = None) -> GP:
        """The same hyperparameters with extra (pseudo-)observations, with the learnt noise
        level or the given noise variance (standardised units; 1e-6, the least the fit learns:
        exact)."""
        x = np.vstack([self.x, x_new])
        y = np.r_[self.yn * self.scale + self.mean, y_new]
        extra = np.full(len(x_new), math.exp(self.theta[-1]) if noise is None else noise)
        return GP(x, y, self.theta, self.mean, self.scale, np.r_[self.noise, extra])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ks = self._k(x, self.x)
        mu = ks @ self.alpha
        v = cho_solve(self.chol, ks.T)
        var = np.clip(math.exp(self.theta[-2]) - (ks * v.T).sum(1), 1e-12, None)
        return mu * self.scale + self.mean, np.sqrt(var) * self.scale


def fence_bad_tail(y: np.ndarray) -> np.ndarray:
    """Results far on the bad side (below the lower quartile by more than 3 interquartile
    ranges: a diverged run's loss of 1e6 among losses near 2) pulled in to that fence, order
    kept. Left as they are, standardising squeezed every other result into a sliver and the GP
    took the outlier's jump for noise. Maximising, so the bad side is low; the good side stays
    as it is (a far better result is the one to follow)."""
    if len(y) < 4:
        return y
    q1, q3 = np.percentile(y, [25, 75])
    spread = q3 - q1
    if not spread > 0:
        return y
    fence = q1 - 3.0 * spread
    below = y < fence
    # squeezed into one spread below the fence, order kept: the worst still ranks last
    y = y.copy()
    y[below] = fence - spread * (1.0 - 1.0 / (1.0 + (fence - y[below]) / spread))
    return y


def _matern(a: np.ndarray, b: np.ndarray, log_var: float) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    r = np.sqrt(5.0 * np.clip(d2, 0.0, None))
    return math.exp(log_var) * (1.0 + r + r * r / 3.0) * np.exp(-r)


__all__ = ["GP", "fence_bad_tail"]
