"""A ladder sweep through `run_sweep` on the local Ray: rung 0 on the smallest model, the best
mixtures promoted from the study's results, the summary's and status's rung lines, and a driver
stopped in the middle of rung 1 that a second `ablate sweep` finishes without redoing a rung."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ablate.analysis.report import write_report
from ablate.design.kinds.ladder import mixture_key, point_name, rank_rung, rung_points
from ablate.study import open_study
from ablate.sweep import SweepProgress, run_sweep, study_status
from ablate.sweep.ladder import PROMOTED

TYPES = ["caption", "count", "compare"]
MODELS = [
    {"name": "target", "path": "t", "size": 7e9},
    {"name": "proxy", "path": "p", "size": 0.5e9},
    {"name": "mid", "path": "m", "size": 2e9},
]


def ladder(make_job: Any) -> Any:
    return make_job(
        models=MODELS,
        objective={"kind": "sim", "metric": "score", "duration_s": 0, "rank_correlation": 0.8},
        # 6 mixtures x 2 seeds on proxy -> 3 x 2 on mid -> 1 x 2 on target: 20 trials
        design={
            "kind": "ladder",
            "balance": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            "seeds": [0, 1],
            "promote": 0.5,
        },
        resources={"max_in_flight": 2},
    )


def by_model(job: Any) -> Counter[tuple[str, str]]:
    trials = open_study(job, create=False).get_trials(deepcopy=False)
    return Counter((t.user_attrs["model"], t.state.name) for t in trials)


def test_a_ladder_promotes_the_best_mixtures_and_resumes(
    ray_session: Any, make_job: Any, tmp_path: Path
) -> None:
    job = ladder(make_job)
    seen: list[SweepProgress] = []

    def stop_in_rung_one(p: SweepProgress) -> None:
        seen.append(p)
        if p.done == 14:  # rung 0 (12) and two trials of rung 1
            raise RuntimeError("driver killed")

    with pytest.raises(RuntimeError, match="driver killed"):
        run_sweep(job, TYPES, progress=stop_in_rung_one)
    study = open_study(job, create=False)
    first = dict(study.user_attrs[PROMOTED])
    assert list(first) == ["1"] and len(first["1"]) == 3
    assert by_model(job)[("proxy", "COMPLETE")] == 12
    assert "rung 0 (proxy): done, 6 mixture(s) ranked" in study_status(job)
    assert "rung 1 (mid): running" in study_status(job)

    summary = run_sweep(job, TYPES, progress=None)
    counts = by_model(job)
    assert counts[("proxy", "COMPLETE")] == 12
    assert counts[("mid", "COMPLETE")] == 6 and counts[("target", "COMPLETE")] == 2
    study = open_study(job, create=False)
    promoted = study.user_attrs[PROMOTED]
    assert promoted["1"] == first["1"] and len(promoted["2"]) == 1

    # the promotions are the best means over seeds of each rung, recomputed from the study
    values: dict[str, list[float]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "COMPLETE":
            values.setdefault(t.user_attrs["design_key"], []).append(t.value)
    rung0 = rank_rung(job, 0, rung_points(job, TYPES, 0, None), values)
    assert rung0.promoted == promoted["1"]
    best = max(rung0.ranked, key=lambda r: r.mean)
    assert best.key == promoted["1"][0] and len(best.values) == 2
    rung1 = rank_rung(job, 1, rung_points(job, TYPES, 1, promoted["1"]), values)
    assert rung1.promoted == promoted["2"]
    top = rung_points(job, TYPES, 2, promoted["2"])
    assert {mixture_key(p) for p in top} == set(promoted["2"])

    text = "\n".join(summary.ladder)
    assert "rung 2 (target): done, 1 mixture(s) ranked" in text
    assert f"best on target: {point_name(top[0])} score" in text and "95% interval" in text
    # CPU trials count one device each (before: "0 GPU-hours spent against ... 0")
    assert re.search(r"device-hours: [0-9.e-]+ spent, \d+% of the full grid on target", text)
    assert run_sweep(job, TYPES, progress=None).n_run == 0  # nothing left, nothing promoted

    # the report draws the rungs and says what status says
    report = write_report(job, tmp_path / "report", log_to_mlflow=False, parallel=False)
    assert report.plots["ladder"].stat().st_size > 10_000
    assert report.notes[-5].startswith("rung 0 (proxy): done, 6 mixture(s) ranked, best")
    assert report.notes[-2].startswith(f"best on target: {point_name(top[0])}")
    assert "device-hours" in report.notes[-1]
    assert "Ladder: each rung" in report.html.read_text()
