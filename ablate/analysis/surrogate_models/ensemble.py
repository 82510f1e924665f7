"""`ensemble`: the mean prediction of `loglinear` and `gp`, each fitted as on its own; the
ridge's smooth trend and the GP's local fit err in different places, so their mean ranks the
top of a study more safely than either (held-out regret, benchmarks/README.md)."""

from __future__ import annotations

import numpy as np

from ablate.analysis.surrogate_models.gp import GP
from ablate.analysis.surrogate_models.loglinear import LogLinear
from ablate.analysis.surrogate_registry import SURROGATES


@SURROGATES.register("ensemble")
class Ensemble:
    """Mean of a LogLinear and a GP fitted to the same trials."""

    def __init__(self, parts: tuple[LogLinear, GP] | None = None) -> None:
        self.parts = parts

    def fit(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Ensemble:
        if self.parts is None:
            self.parts = (LogLinear().fit(p, z, y), GP().fit(p, z, y))
        else:
            self.parts = (self.parts[0].refit_fixed(p, z, y), self.parts[1].refit_fixed(p, z, y))
        return self

    def predict(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        assert self.parts is not None
        return np.mean([m.predict(p, z) for m in self.parts], axis=0)

    def refit_fixed(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Ensemble:
        assert self.parts is not None
        return Ensemble(self.parts).fit(p, z, y)
