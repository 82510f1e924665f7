"""Where a trial's training checkpoints live, and which one a retried trial resumes from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from ablate.config import JobSpec, resolve_path, to_dict


def checkpoint_folder(job: JobSpec, model_path: str, selection_hash: str, seed: int) -> Path:
    """`<checkpoint_dir>/<selection hash[:16]>-s<seed>-<settings hash[:8]>`: a retried trial
    finds its own folder; a change of model, LoRA or training settings starts afresh."""
    assert job.train.checkpoint_dir is not None
    kept = dataclasses.replace(job.train, checkpoint_dir=None, checkpoint_every=0, threads=None)
    settings = json.dumps([model_path, to_dict(job.model), to_dict(kept)], sort_keys=True)
    digest = hashlib.sha256(settings.encode()).hexdigest()[:8]
    root = resolve_path(job.train.checkpoint_dir, job.base_dir)
    return root / f"{selection_hash[:16]}-s{seed}-{digest}"


#: `TrialResult.info` key of a finished trial's checkpoint folder: kept until the driver has the
#: result, so a trial whose driver was killed first resumes from it instead of step 0.
FINISHED_CHECKPOINT = "checkpoint_folder"


def forget_checkpoint(folder: str | None) -> None:
    """Remove a finished trial's checkpoint folder (its result is recorded: nothing to resume)."""
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def last_whole_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-N` the Trainer finished writing: its `trainer_state.json`, which
    the Trainer writes last, parses. Newer, unfinished ones (a worker killed mid-save) are
    removed: transformers' `get_last_checkpoint` takes the highest N whatever its state, and a
    torn one made every retry of the trial fail on the same missing file."""
    steps = {int(p.name[11:]): p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit()}
    for step in sorted(steps, reverse=True):
        try:
            json.loads((steps[step] / "trainer_state.json").read_text())
            return str(steps[step])
        except (OSError, ValueError):
            shutil.rmtree(steps[step], ignore_errors=True)
    return None


__all__ = [
    "FINISHED_CHECKPOINT",
    "checkpoint_folder",
    "forget_checkpoint",
    "last_whole_checkpoint",
]
