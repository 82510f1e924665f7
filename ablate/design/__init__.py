"""Fixed designs: which mixtures a sweep runs (pure functions, no Ray, MLflow or Optuna).

Only re-exports: building blocks in `points`, the kind registry in `registry`, one file per kind
in `kinds/`.
"""

from ablate.design.points import (
    KEY_DIGITS,
    cross_volumes_and_seeds,
    design_key,
    dirichlet_cover,
    dominant_share,
    lattice_points,
    prior_proportions,
    proportions_for_balance,
    with_min_share,
)
from ablate.design.registry import DESIGNS, SEARCH, fixed_design

__all__ = [
    "DESIGNS",
    "KEY_DIGITS",
    "SEARCH",
    "cross_volumes_and_seeds",
    "design_key",
    "dirichlet_cover",
    "dominant_share",
    "fixed_design",
    "lattice_points",
    "prior_proportions",
    "proportions_for_balance",
    "with_min_share",
]
