"""`loglinear` (RegMix-style regression): ridge on p_i, ln(p_i + 0.01), z, z^2 and p_i * z, so
the best shares may move with volume and the score may peak along volume."""

from __future__ import annotations

import numpy as np

from ablate.analysis.surrogate_registry import SURROGATES

#: Floor inside ln(p + EPS): a share of 0 is a finite (very negative) feature, not -inf.
EPS = 0.01


@SURROGATES.register("loglinear")
class LogLinear:
    """Ridge regression on [p, ln(p + EPS), z, z^2, p * z] (features standardised)."""

    def __init__(self, alpha: float | None = None) -> None:
        self.alpha = alpha

    @staticmethod
    def _features(p: np.ndarray, z: np.ndarray) -> np.ndarray:
        z = z[:, None]
        return np.hstack([p[:, :-1], np.log(p + EPS), z, z * z, p[:, :-1] * z])

    def fit(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> LogLinear:
        from sklearn.linear_model import Ridge, RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        reg = (
            Ridge(alpha=self.alpha)
            if self.alpha is not None
            else RidgeCV(alphas=np.logspace(-4, 2, 13))
        )
        self.pipe = make_pipeline(StandardScaler(), reg).fit(self._features(p, z), y)
        if self.alpha is None:
            self.alpha = float(self.pipe[-1].alpha_)
        return self

    def predict(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipe.predict(self._features(p, z)))

    def refit_fixed(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> LogLinear:
        return LogLinear(self.alpha).fit(p, z, y)
