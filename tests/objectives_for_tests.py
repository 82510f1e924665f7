"""Objective functions for `objective.kind: python` in tests (imported by Ray workers too)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

TARGET = {"caption": 0.5, "count": 0.3, "compare": 0.2}


def landscape(proportions: dict[str, float], volume: int, seed: int) -> float:
    """Deterministic: best near TARGET, a little better with more rows, a small seed offset."""
    dist = sum((proportions.get(t, 0.0) - p) ** 2 for t, p in TARGET.items())
    return 1.0 - dist + 0.01 * math.log(volume) + 0.001 * seed


def fails_for_seed_1(proportions: dict[str, float], volume: int, seed: int) -> float:
    if seed == 1:
        raise ValueError(f"bad luck for seed {seed}")
    return landscape(proportions, volume, seed)


def marker_path(volume: int, seed: int) -> Path:
    return Path(tempfile.gettempdir()) / f"ablate-test-died-v{volume}-s{seed}"


def dies_once(proportions: dict[str, float], volume: int, seed: int) -> float:
    """Kills its worker process the first time it sees (volume, seed); then behaves."""
    marker = marker_path(volume, seed)
    if not marker.exists():
        marker.write_text("died")
        os._exit(1)
    return landscape(proportions, volume, seed)


def always_dies(proportions: dict[str, float], volume: int, seed: int) -> float:
    os._exit(1)


def slow_on_node(proportions: dict[str, float], volume: int, seed: int) -> float:
    """Appends its Ray node id to $ABLATE_TEST_NODE_MARKER, then takes 4 s (node-loss test)."""
    import time

    import ray

    with open(os.environ["ABLATE_TEST_NODE_MARKER"], "a") as f:
        f.write(ray.get_runtime_context().get_node_id() + "\n")
    time.sleep(4.0)
    return landscape(proportions, volume, seed)


def judged(proportions: dict[str, float], volume: int, seed: int) -> float:
    """Rates one answer with the judge of the bench file $ABLATE_TEST_JUDGE_BENCH: its key is
    read on the worker's node (its own environment, or the bench's key file)."""
    from ablate.bench import load_bench
    from ablate.bench.judge import JudgeItem, check_available, judge_answers, judge_metrics

    spec = load_bench(os.environ["ABLATE_TEST_JUDGE_BENCH"])
    assert spec.judge is not None
    item = JudgeItem("user: <image> what is it?", f"q{volume}-{seed}", "a circle", "a circle")
    run = judge_answers(spec.judge, [item], Path(spec.source).parent)
    check_available(run)
    return judge_metrics(run.verdicts)["judge_score"]


def judge_up_marker() -> Path:
    return Path(tempfile.gettempdir()) / "ablate-test-judge-up"


def judge_down(proportions: dict[str, float], volume: int, seed: int) -> float:
    """Fails like a trial whose judge refused its key, until `judge_up_marker()` exists."""
    from ablate.bench.judge import JudgeUnavailable

    if judge_up_marker().exists():
        return landscape(proportions, volume, seed)
    raise JudgeUnavailable(
        "the judge m at http://127.0.0.1:9/v1 left 4 of 4 answers unscored: HTTP 401 "
        "Unauthorized (4 refused key, 0 transport); check the key, then rerun"
    )
