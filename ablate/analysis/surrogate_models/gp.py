"""`gp`: a Gaussian process (scikit-learn) with an anisotropic RBF kernel plus white noise,
fitted on at most MAX_GP_POINTS trials."""

from __future__ import annotations

from typing import Any

import numpy as np

from ablate.analysis.surrogate_registry import SURROGATES

#: The GP is fitted on at most this many trials (drawn at random, seeded) to bound its cost.
MAX_GP_POINTS = 150


@SURROGATES.register("gp")
class GP:
    """Gaussian process on [p, z]: constant x anisotropic RBF + white noise, normalised y."""

    def __init__(self, kernel: Any = None) -> None:
        self.kernel = kernel

    def fit(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> GP:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        x = np.column_stack([p, z])
        if len(y) > MAX_GP_POINTS:  # fitting costs n^3 per optimizer step: 500 trials took ~20 s
            keep = np.random.default_rng(0).choice(len(y), MAX_GP_POINTS, replace=False)
            x, y = x[keep], y[keep]
        fixed = self.kernel is not None
        kernel = self.kernel or ConstantKernel(1.0, (1e-2, 1e2)) * RBF(
            np.ones(x.shape[1]), (1e-2, 1e2)
        ) + WhiteKernel(0.1, (1e-6, 1.0))
        with warnings.catch_warnings():  # a length scale at its bound is fine for ranking
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.gp = GaussianProcessRegressor(
                kernel,
                normalize_y=True,
                optimizer=None if fixed else "fmin_l_bfgs_b",
                n_restarts_optimizer=0,
                random_state=0,
            ).fit(x, y)
        self.kernel_ = self.gp.kernel_
        return self

    def predict(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.gp.predict(np.column_stack([p, z])))

    def refit_fixed(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> GP:
        return GP(self.kernel_).fit(p, z, y)
