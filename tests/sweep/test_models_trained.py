"""Issue 15's "done when": a study across two tiny models of different sizes, built offline,
trained end to end on the CPU (LoRA fine-tunes of the built-in world, scored on its bench),
with a verdict per model and the rank transfer between them in the report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ablate.analysis import load
from ablate.analysis.report import write_report
from ablate.config import JobSpec, build
from ablate.sweep import run_sweep

TYPES = ["colors", "layout", "compare", "lists"]


@pytest.fixture(scope="module")
def bigger_model(tiny_world: dict[str, Path]) -> Path:
    """A second tiny Llava, about 3x the built-in one's parameters, same tokenizer corpus."""
    import json

    from ablate.world import TinyModelSpec, build_tiny_model

    corpus = [
        turn["value"]
        for line in tiny_world["train"].read_text().splitlines()
        for turn in json.loads(line)["conversations"]
    ]
    spec = TinyModelSpec(text_hidden=160, text_layers=3, seed=1)
    return build_tiny_model(tiny_world["root"] / "models" / "tiny-llava-big", corpus, spec)


def test_two_trained_models_get_their_own_verdicts_and_a_rank_transfer(
    ray_session: Any, tiny_world: dict[str, Path], bigger_model: Path, tmp_path: Path
) -> None:
    lora = {"r": 8, "alpha": 16}
    data = {
        "study": "two-sizes",
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": f"sqlite:///{tmp_path}/mlflow.db",
        "pool": str(tiny_world["pool"]),
        "bench": str(tiny_world["bench"]),
        "taxonomy": "skill",
        "task_types": TYPES,
        "models": [
            {"name": "small", "path": str(tiny_world["model"]), "lora": lora, "size": 3.0e5},
            {"name": "big", "path": str(bigger_model), "lora": lora, "size": 1.0e6},
        ],
        "train": {"epochs": 1, "lr": 5.0e-3, "batch_size": 8, "warmup_ratio": 0.1},
        # 2 volumes x 2 balance levels x 2 seeds = 8 trials per model
        "design": {"kind": "grid", "volumes": [16, 48], "balance": [0.5, 1.0], "seeds": [0, 1]},
        "resources": {"cpus_per_trial": 1, "max_in_flight": 2, "gpus_per_trial": 0},
    }
    job = build(JobSpec, data, "test")
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 16 and summary.n_failed == 0
    df = load(job)
    assert sorted(df["model"].value_counts().items()) == [("big", 8), ("small", 8)]
    assert all(math.isfinite(v) for v in df["value"])
    report = write_report(job, tmp_path / "report", log_to_mlflow=False, parallel=False)
    notes = " ".join(report.notes)
    scope = " ".join(report.findings.scope)  # said first, before the verdict
    assert "This study has 2 models (" in scope and "never pooled as seed replicates" in scope
    assert "the verdict, plots, proposals and surrogates are of model big" in scope
    assert "Model small: " in notes and '"Less is more"' in notes
    assert "Rank transfer small -> big: Spearman" in notes and "over 4 shared mixtures" in notes
    assert report.plots["rank_transfer"].is_file()
    assert report.plots["Score against volume, one line per balance level: model small"].is_file()
    assert int(report.findings.cells.table["n"].sum()) == 8  # the big model's trials only
