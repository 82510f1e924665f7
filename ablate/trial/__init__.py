"""One trial: materialise a mixture, LoRA fine-tune, benchmark. Usable alone, without Ray.

`run.py` reads a trial top to bottom; `encode` turns dialogues into tokens, `train` fine-tunes
(`packing` for padding-free rows), `evaluate` and `scoring` score the bench, `heldout` the
held-out rows of the pool. Only re-exports.
"""

from ablate.result import TrialResult
from ablate.trial.heldout import heldout_positions
from ablate.trial.run import run_trial

__all__ = ["TrialResult", "heldout_positions", "run_trial"]
