"""Extending ablate without editing it: a module named under a job's `plugins:` registers a
design kind, an objective kind and a scorer (tests/extensions_for_tests.py); config validation
finds them, a sweep runs them on Ray workers, and misspellings get did-you-mean errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from ablate.bench import load_bench
from ablate.errors import UserError
from ablate.plan import check_bench, design_mixtures, load_job
from ablate.trial.evaluate import TurnScore
from ablate.trial.scorer import EncodedBench, Scoring, scorer_of

TYPES = ["caption", "count", "compare"]


def write_job(tmp_path: Path, **sections: Any) -> Path:
    data = {
        "study": "extensions",
        "storage": "optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "plugins": ["extensions_for_tests"],
        "task_types": TYPES,
        "objective": {"kind": "share_of_first", "metric": "score"},
        "design": {"kind": "pairs", "volumes": [100, 400], "seeds": [0]},
        "resources": {"gpus_per_trial": 0, "max_in_flight": 2},
        **sections,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_plugins_design_and_objective_pass_validation(tmp_path: Path) -> None:
    job = load_job(write_job(tmp_path))
    points = design_mixtures(job, TYPES)
    assert [p.name for p in points] == [
        "v100-caption+count-s0",
        "v100-caption+compare-s0",
        "v100-count+compare-s0",
        "v400-caption+count-s0",
        "v400-caption+compare-s0",
        "v400-count+compare-s0",
    ]
    with pytest.raises(UserError, match=r"not a known design kind \(did you mean `pairs`\?\)"):
        load_job(write_job(tmp_path), ["design.kind=pair"])
    with pytest.raises(UserError, match="objective share_of_first needs `task_types`"):
        load_job(write_job(tmp_path, task_types=[]))


def test_a_plugin_that_does_not_import_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_job(write_job(tmp_path, plugins=["no_such_plugin_module"]))
    assert "`plugins` names module `no_such_plugin_module`, which cannot be imported" in str(
        err.value
    )
    assert "run from its folder with `PYTHONPATH=. ablate ...`" in str(err.value)  # the fix
    # a module that is found but fails while importing: its own error, no PYTHONPATH advice
    (tmp_path / "broken_plugin_for_test.py").write_text("import no_such_dependency_xyz\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(UserError) as err:
            load_job(write_job(tmp_path, plugins=["broken_plugin_for_test"]))
    finally:
        sys.path.remove(str(tmp_path))
    assert "No module named 'no_such_dependency_xyz'" in str(err.value)
    assert "PYTHONPATH" not in str(err.value)


@pytest.mark.slow
def test_a_sweep_runs_the_plugins_kinds_on_ray_workers(tmp_path: Path, ray_session: Any) -> None:
    from ablate.analysis import load
    from ablate.sweep import run_sweep

    job = load_job(write_job(tmp_path))
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 6 and summary.n_failed == 0
    df = load(job).sort_values("trial")
    expected = df["p/caption"] + df["volume"] / 1e6  # the plugin objective's score
    assert list(df["value"]) == pytest.approx(list(expected))
    assert summary.best_value == pytest.approx(0.5 + 400 / 1e6)


def test_a_plugins_scorer_is_checked_before_training_and_scores(tmp_path: Path) -> None:
    data = tmp_path / "bench.jsonl"
    data.write_text(
        '{"id": "d1", "conversations": [{"from": "human", "value": "q"}, '
        '{"from": "gpt", "value": "a"}]}\n'
    )
    bench_file = tmp_path / "bench.yaml"
    bench_file.write_text(
        yaml.safe_dump({"name": "b", "data": str(data), "scorer": "first_turn_only"})
    )
    job = load_job(write_job(tmp_path, bench=str(bench_file)))
    check_bench(job)
    spec = load_bench(bench_file)

    two_turns = SimpleNamespace(turn_spans=[(0, 1), (1, 2)])  # what the scorer reads of a dialogue
    bench = EncodedBench(spec, [], [two_turns, two_turns], [], {}, [])
    exact = [TurnScore(ok, False, {}) for ok in (True, True, False, True)]
    scored = scorer_of(spec).score(bench, exact, Scoring(None, None, None, 0))
    assert [s.correct for s in scored.turns] == [True, None, False, None]
    bench_file.write_text(yaml.safe_dump({"name": "b", "data": str(data), "scorer": "first_turn"}))
    with pytest.raises(UserError, match=r"did you mean `first_turn_only`"):
        check_bench(job)
