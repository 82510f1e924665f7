"""Surrogate models, one file each, registered in `ablate.analysis.surrogate_registry.SURROGATES`
(which imports every module here; a new file needs no edit anywhere else).

The built-ins are re-exported in the order `fit_surrogates` fits and lists them, which is their
registration order (on a tie in held-out Spearman the earlier one is the best); any other file
registers after them.
"""

# isort: off
from ablate.analysis.surrogate_models.loglinear import EPS, LogLinear
from ablate.analysis.surrogate_models.mixing_law import MixingLaw
from ablate.analysis.surrogate_models.gp import GP, MAX_GP_POINTS
from ablate.analysis.surrogate_models.ensemble import Ensemble

# isort: on

__all__ = ["EPS", "GP", "MAX_GP_POINTS", "Ensemble", "LogLinear", "MixingLaw"]
