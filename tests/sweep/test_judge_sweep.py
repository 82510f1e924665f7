"""A sweep scored by an LLM judge: it stops after a few trials in a row fail because the judge
is unavailable; the key reaches the Ray workers from their own node (environment or key file)
and appears in no file, log line or Ray record; a node without it stops the sweep before any
trial."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusters_for_tests import NODE_STORE, empty_head_cluster
from objectives_for_tests import judge_up_marker
from optuna.trial import TrialState

from ablate.errors import UserError
from ablate.plan import load_job
from ablate.study import open_study
from ablate.sweep import run_sweep

TYPES = ["caption", "count", "compare"]
KEY = "sk-cluster-secret-0123456789abcdef"
TESTS = Path(__file__).resolve().parents[1]


def test_the_sweep_stops_after_three_trials_in_a_row_fail_by_the_judge(
    ray_session: Any, make_job: Any
) -> None:
    judge_up_marker().unlink(missing_ok=True)
    job = make_job(
        "objectives_for_tests:judge_down",
        design={"kind": "grid", "volumes": [100, 200, 300, 400, 500], "balance": [1.0]},
    )
    with pytest.raises(UserError) as err:
        run_sweep(job, TYPES, progress=None)
    assert str(err.value).startswith(
        "sweep stopped: 3 trials in a row failed because the judge was unavailable (the judge m "
        "at http://127.0.0.1:9/v1 left 4 of 4 answers unscored: HTTP 401 Unauthorized"
    )
    trials = open_study(job, create=False).get_trials()
    assert sorted(t.state.name for t in trials) == ["FAIL"] * 3 + ["WAITING"] * 2
    # fixed, the next sweep runs the failed trials again, and the rest
    judge_up_marker().touch()
    try:
        summary = run_sweep(job, TYPES, progress=None)
    finally:
        judge_up_marker().unlink(missing_ok=True)
    assert summary.n_complete == 5 and summary.n_failed == 0


def _bench(tmp_path: Path, server: Any, **judge: Any) -> Path:
    (tmp_path / "bench.jsonl").write_text(
        '{"id": "b0", "domain": "d", "conversations": [{"from": "human", "value": "What is '
        'it?"}, {"from": "gpt", "value": "A circle."}]}\n'
    )
    bench = {
        "name": "judged",
        "data": "bench.jsonl",
        "scorer": "judge",
        "judge": {"url": server.url, "model": "judge-7b", "cache": "judge.sqlite", **judge},
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(bench))
    return path


def _driver(job: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **env,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
    }
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", "sweep", str(job), *extra],
        cwd=job.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _files_with(root: Path, text: str, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under `root` (logs, databases, sockets skipped) that contains `text`."""
    found = []
    for path in root.rglob("*"):
        if path in skip or not path.is_file() or path.is_symlink():
            continue
        try:
            if text.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_local_sweep_judges_with_the_drivers_key_and_writes_it_nowhere(
    tmp_path: Path, judge_server: Any
) -> None:
    judge_server.key = KEY
    bench = _bench(tmp_path, judge_server, api_key_env="ABLATE_TEST_SWEEP_KEY")
    job = tmp_path / "job.yaml"
    job.write_text(
        yaml.safe_dump(
            {
                "study": "judged-local",
                "storage": "sqlite:///optuna.db",
                "tracking": "sqlite:///mlflow.db",
                "task_types": TYPES,
                "objective": {"kind": "python", "target": "objectives_for_tests:judged"},
                "design": {"kind": "grid", "volumes": [100, 200], "balance": [1.0]},
                "resources": {"cpus_per_trial": 1, "max_in_flight": 2, "gpus_per_trial": 0},
            }
        )
    )
    ray_tmp = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))
    env = {
        "ABLATE_TEST_SWEEP_KEY": KEY,
        "ABLATE_TEST_JUDGE_BENCH": str(bench),
        "RAY_TMPDIR": str(ray_tmp),
    }
    done = _driver(job, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trials = open_study(load_job(job), create=False).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert {auth for auth, _ in judge_server.seen} == {f"Bearer {KEY}"}
    assert KEY not in done.stdout + done.stderr
    assert _files_with(tmp_path, KEY) == [] and _files_with(ray_tmp, KEY) == []
    assert any(ray_tmp.rglob("*.log")) or any(ray_tmp.rglob("*.out"))  # Ray's logs were looked at


@pytest.mark.slow
@pytest.mark.cluster
def test_cluster_workers_read_the_key_on_their_node_and_a_node_without_it_stops_the_sweep(
    tmp_path: Path, judge_server: Any
) -> None:
    from ablate.pool import ImportRequest, import_pool
    from ablate.world import WorldSpec, synth_world

    os.environ.pop("ABLATE_TEST_NODE_KEY", None)  # the nodes start without the key
    judge_server.key = KEY
    files = synth_world(WorldSpec(out=tmp_path / "world", n_train=60))
    import_pool(ImportRequest(source=files.train, out=tmp_path / "pool"))
    bench = _bench(tmp_path, judge_server, api_key_env="ABLATE_TEST_NODE_KEY")
    base = {
        "storage": "sqlite:///optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "pool": "pool",
        "taxonomy": "skill",
        "task_types": ["colors", "layout", "compare", "lists"],
        "design": {"kind": "grid", "volumes": [20, 30], "balance": [1.0]},
        "resources": {"cpus_per_trial": 1, "max_in_flight": 2, "gpus_per_trial": 0},
    }
    trained = tmp_path / "trained.yaml"
    trained.write_text(
        yaml.safe_dump(
            {
                **base,
                "study": "judged-train",
                "bench": "bench.yaml",
                "model": {"path": "no-model-needed"},
                "objective": {"kind": "train", "metric": "overall_accuracy"},
            }
        )
    )
    ray_tmp = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    os.environ["ABLATE_TEST_JUDGE_BENCH"] = str(bench)  # the nodes' environment: a path only
    cluster = empty_head_cluster(temp_dir=str(ray_tmp))
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, object_store_memory=NODE_STORE)
        # the driver has the key (its checks pass), the nodes do not: stopped before any trial
        start = time.perf_counter()
        env = {"ABLATE_TEST_NODE_KEY": KEY}
        done = _driver(trained, env, "--address", cluster.address)
        assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
        (line,) = done.stderr.strip().splitlines()[-1:]
        assert line.startswith("ablate: error: a Ray worker on node ") and (
            "cannot score trials: the bench's judge has no API key: neither "
            "$ABLATE_TEST_NODE_KEY (not set on " in line
        ), line
        assert time.perf_counter() - start < 120
        study = open_study(load_job(trained), create=False)
        assert all(t.state == TrialState.WAITING for t in study.get_trials())  # none ran
        # a key file every node reads: the workers judge with it (the driver needs no key)
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "judge.key").write_text(KEY + "\n")
        _bench(
            tmp_path,
            judge_server,
            api_key_env="ABLATE_TEST_NODE_KEY",
            api_key_file="secrets/judge.key",
        )
        judge_server.seen.clear()
        python = tmp_path / "python.yaml"
        python.write_text(
            yaml.safe_dump(
                {
                    **base,
                    "study": "judged-python",
                    "objective": {"kind": "python", "target": "objectives_for_tests:judged"},
                }
            )
        )
        done = _driver(python, {}, "--address", cluster.address)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        os.environ.pop("ABLATE_TEST_JUDGE_BENCH", None)
        cluster.shutdown()
    trials = open_study(load_job(python), create=False).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, trials[0].user_attrs
    assert {auth for auth, _ in judge_server.seen} == {f"Bearer {KEY}"}
    key_file = tmp_path / "secrets" / "judge.key"
    assert _files_with(tmp_path, KEY, skip=(key_file,)) == [] and _files_with(ray_tmp, KEY) == []


def _world_bench(tmp_path: Path, tiny_world: dict[str, Path], server: Any) -> Path:
    """A third of the world's bench, scored by the loopback judge."""
    import json

    data = tmp_path / "judged.jsonl"
    lines = tiny_world["bench"].parent.joinpath("bench.jsonl").read_text().splitlines()[::3]
    with data.open("w") as f:
        for line in lines:
            r = json.loads(line)
            images = r.get("image") or []
            images = [images] if isinstance(images, str) else images
            r["image"] = [str(tiny_world["world"] / p) for p in images]
            f.write(json.dumps(r) + "\n")
    path = tmp_path / "judged.yaml"
    judge = {"url": server.url, "model": "judge-x", "cache": str(tmp_path / "j.sqlite")}
    spec = {"name": "judged", "data": str(data), "scorer": "judge", "max_new_tokens": 4}
    path.write_text(yaml.safe_dump({**spec, "group_fields": ["skill"], "judge": judge}))
    return path


def test_a_judged_sweep_records_its_judge_everywhere(
    ray_session: Any, train_job: Any, tiny_world: dict[str, Path], tmp_path: Path, judge_server: Any
) -> None:
    from mlflow.tracking import MlflowClient

    job = train_job(bench=str(_world_bench(tmp_path, tiny_world, judge_server)))
    summary = run_sweep(job, ["colors", "layout", "compare", "lists"], progress=None)
    assert summary.n_complete == 1
    study = open_study(job, create=False)
    judge = study.user_attrs["ablate.judge"]
    assert judge["model"] == "judge-x" and judge["url"] == judge_server.url
    assert judge["output"] == "json_schema" and judge["rubric_version"] == 1
    (trial,) = study.get_trials()
    assert trial.user_attrs["judge"] == judge
    metrics = trial.user_attrs["metrics"]
    for name in ("judge_requests", "judge_prompt_tokens", "judge_completion_tokens"):
        assert metrics[name] > 0, name
    assert metrics["judge_cache_hit_rate"] == 0 and metrics["judge_unscored/transport"] == 0
    client = MlflowClient(job.tracking_uri)
    (child,) = client.search_runs(
        [client.get_run(summary.parent_run_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{summary.parent_run_id}'",
    )
    assert child.data.params["judge.model"] == "judge-x"
    assert child.data.params["judge.host"] == judge["host"]
    assert child.data.tags["ablate.judge"] == f"judge-x at {judge['host']} (rubric v1)"
    assert child.data.metrics["judge_requests"] == metrics["judge_requests"]
    parent = client.get_run(summary.parent_run_id).data.tags
    assert (
        parent["ablate.judge.model"] == "judge-x" and parent["ablate.judge.output"] == "json_schema"
    )
