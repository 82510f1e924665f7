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
from ablate.design.registry import DESIGNS, KIND_KEYS, SEARCH, design_keys_read, fixed_design

__all__ = [
    "DESIGNS",
    "KEY_DIGITS",
    "KIND_KEYS",
    "SEARCH",
    "cross_volumes_and_seeds",
    "design_key",
    "design_keys_read",
    "dirichlet_cover",
    "dominant_share",
    "fixed_design",
    "lattice_points",
    "prior_proportions",
    "proportions_for_balance",
    "with_min_share",
]
