"""Bench scorers, one file each; `ablate.trial.scorer.SCORERS` finds them."""
