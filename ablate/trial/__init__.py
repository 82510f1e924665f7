"""One trial: materialise a mixture, LoRA fine-tune, benchmark. Usable alone, without Ray.

`run.py` reads a trial top to bottom; `encode` turns dialogues into tokens, `train` fine-tunes
(`packing` for padding-free rows), `evaluate` and `scoring` score the bench, `heldout` the
loss on the pool's held-out rows (drawn by `ablate.mixture.heldout`). Only re-exports.
"""

from ablate.mixture import heldout_positions
from ablate.result import TrialResult
from ablate.trial.run import run_trial

__all__ = ["TrialResult", "heldout_positions", "run_trial"]
