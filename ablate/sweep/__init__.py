"""The sweep: Optuna decides, Ray runs, MLflow records. Only re-exports: the driver (`driver`),
its events (`dispatcher`), the Ray workers (`workers`, ablate's only importer of ray), MLflow
catch-up (`sync`), `ablate status` (`status`), progress and summary (`summary`)."""

from ablate.sweep.driver import run_sweep
from ablate.sweep.status import study_status
from ablate.sweep.summary import SweepProgress, SweepSummary, print_progress
from ablate.sweep.workers import TrialStopped, TrialWorker

__all__ = [
    "SweepProgress",
    "SweepSummary",
    "TrialStopped",
    "TrialWorker",
    "print_progress",
    "run_sweep",
    "study_status",
]
