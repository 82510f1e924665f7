"""Optuna samplers, one file each; `ablate.search.sampling.SAMPLERS` finds them."""
