"""The surrogate registry: `ablate propose --model NAME` -> a factory of unfitted `Model`s.

A surrogate is one file in `ablate/analysis/surrogate_models/` whose class (or any function that
returns a fresh `Model`) is decorated with `@SURROGATES.register("name")`; `fit_surrogates`
cross-validates every registered surrogate unless told which. scikit-learn and scipy are
imported inside `fit` (an unfitted model costs nothing to build).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from ablate.registry import Registry


class Model(Protocol):
    """A surrogate: predicts a score from shares `p` (n x k) and standardised ln(volume) `z`."""

    def fit(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Model:
        """Fit to the trials (`y`: their scores) and return self."""
        ...

    def predict(self, p: np.ndarray, z: np.ndarray) -> np.ndarray:
        """One predicted score per row of `p`."""
        ...

    def refit_fixed(self, p: np.ndarray, z: np.ndarray, y: np.ndarray) -> Model:
        """A new model fitted to other rows with this one's hyperparameters kept (the bootstrap
        of a proposal's interval refits it a hundred times)."""
        ...


ModelFactory = Callable[[], Model]
SURROGATES: Registry[ModelFactory] = Registry(
    "surrogate", "--model", package="ablate.analysis.surrogate_models"
)
"""Surrogate name -> factory; built in: loglinear, mixing_law, gp, ensemble (in this order)."""


def make_model(name: str, source: str = "") -> Model:
    """A fresh, unfitted surrogate; a did-you-mean UserError for an unknown name."""
    return SURROGATES.get(name, source)()
