"""`ablate trial` and `ablate sweep` with a bench scored by an LLM judge: a judge that cannot
work (unset key variable, wrong key, dead server, missing model) stops the command before any
training, Ray, study or tracking store, in seconds, with one `ablate: error:` line naming the
cause and never the key."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.cli import main

KEY = "sk-the-real-key-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 60-dialogue world and its pool (no model: nothing may get as far as loading one)."""
    from ablate.pool import ImportRequest, import_pool
    from ablate.world import WorldSpec, synth_world

    root = tmp_path_factory.mktemp("judge-world")
    files = synth_world(WorldSpec(out=root / "world", n_train=60))
    import_pool(ImportRequest(source=files.train, out=root / "pool"))
    return {"world": files.root, "pool": root / "pool", "bench_data": files.root / "bench.jsonl"}


def write_job(tmp_path: Path, world: dict[str, Path], **judge: Any) -> Path:
    bench = {
        "name": "world-judged",
        "data": str(world["bench_data"]),
        "group_fields": ["skill"],
        "scorer": "judge",
        "judge": {"model": "judge-7b", "cache": str(tmp_path / "judge.sqlite"), **judge},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    job = {
        "study": "judged",
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": f"sqlite:///{tmp_path}/mlflow.db",
        "pool": str(world["pool"]),
        "bench": "bench.yaml",
        "taxonomy": "skill",
        "task_types": ["colors", "layout", "compare", "lists"],
        "model": {"path": str(tmp_path / "no-model-here")},
        "objective": {"kind": "train", "metric": "overall_accuracy"},
        "design": {"kind": "grid", "volumes": [20], "balance": [1.0], "seeds": [0]},
        "resources": {"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def stops(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str | Path) -> str:
    """Run a command that the judge check must stop; its one line after `ablate: error: `."""
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2 and seconds < 30, (out, err, seconds)
    assert err.startswith("ablate: error: ") and err.count("\n") == 1, err
    assert KEY not in out + err and "Traceback" not in out + err
    # nothing started: no study, no tracking store
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()
    prefix = f"ablate: error: {tmp_path / 'bench.yaml'}: judge check (before any training): "
    assert err.startswith(prefix), err
    return err[len(prefix) :].rstrip("\n")


@pytest.mark.parametrize("command", ["trial", "sweep"])
def test_an_unset_key_variable_stops_before_training(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    world: dict[str, Path],
    judge_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    monkeypatch.delenv("ABLATE_TEST_JUDGE_KEY", raising=False)
    job = write_job(tmp_path, world, url=judge_server.url, api_key_env="ABLATE_TEST_JUDGE_KEY")
    msg = stops(capsys, tmp_path, command, job)
    assert msg.startswith(
        "the bench's judge has no API key: neither $ABLATE_TEST_JUDGE_KEY (not set on "
    )
    assert "export ABLATE_TEST_JUDGE_KEY=... before `ablate`" in msg
    assert not judge_server.seen


@pytest.mark.parametrize("command", ["trial", "sweep"])
def test_a_wrong_key_stops_before_training(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    world: dict[str, Path],
    judge_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    judge_server.key = KEY
    monkeypatch.setenv("ABLATE_TEST_JUDGE_KEY", "sk-wrong-0123456789")
    job = write_job(tmp_path, world, url=judge_server.url, api_key_env="ABLATE_TEST_JUDGE_KEY")
    assert stops(capsys, tmp_path, command, job) == (
        f"{judge_server.url} refused the API key from $ABLATE_TEST_JUDGE_KEY (HTTP 401 "
        "Unauthorized: Invalid API Key); check the key"
    )


def test_a_dead_server_stops_the_sweep_before_ray(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = write_job(tmp_path, world, url=f"http://127.0.0.1:{port}/v1")
    ray_before = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    assert stops(capsys, tmp_path, "sweep", job) == (
        f"nothing answers at 127.0.0.1:{port} (connection refused); start the judge server or "
        "correct `judge.url`"
    )
    assert ("ray" in sys.modules and sys.modules["ray"].is_initialized()) == ray_before


def test_a_missing_model_and_a_url_without_v1_stop_the_trial(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path], judge_server: Any
) -> None:
    judge_server.models = ["judge-8b"]
    job = write_job(tmp_path, world, url=judge_server.url)
    assert stops(capsys, tmp_path, "trial", job) == (
        f"{judge_server.url} does not serve the model `judge-7b` (it lists: judge-8b); set "
        "`judge.model` to the name the server lists"
    )
    bare = judge_server.url.removesuffix("/v1")
    job = write_job(tmp_path, world, url=bare)
    assert stops(capsys, tmp_path, "trial", job).startswith(f"`judge.url` {bare} has no /v1")


def test_the_probe_stops_a_harsh_judge_and_can_be_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path], judge_server: Any
) -> None:
    judge_server.mode = "harsh"
    job = write_job(tmp_path, world, url=judge_server.url)
    msg = stops(capsys, tmp_path, "sweep", job)
    assert msg.startswith("the judge rated 3 of 3 bench reference answers against themselves")
    assert msg.endswith("pass --skip-judge-probe to run anyway")
    # skipped, the checks pass and the trial goes on to load its model (which does not exist)
    code = main(["trial", str(job), "--skip-judge-probe"])
    _, err = capsys.readouterr()
    assert code == 2 and "probe skipped" in err and "no-model-here" in err, err
