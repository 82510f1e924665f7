"""Shared fixtures: one local Ray session for the whole test run, jobs with stores in tmp_path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ablate.config import JobSpec, build

#: A test that uses one of these starts Ray, builds the tiny world or trains a model: it is
#: marked `slow` here, so `pytest -m "not slow"` selects the quick tests without listing them.
SLOW_FIXTURES = {
    "ray_session",
    "tiny_world",
    "world_texts",
    "world_examples",
    "tiny_models",
    "llava",
    "qwen",
    "onevision",
    "idefics3",
    "train_job",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """`-m "not slow"` promises no Ray: fail the run if a quick test started one."""
    import sys

    ray = sys.modules.get("ray")
    quick = session.config.getoption("markexpr", "") == "not slow"
    if quick and ray is not None and ray.is_initialized():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\na test outside the `slow` marker started Ray: mark it slow", file=sys.stderr)


def merge_sections(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Job data with overrides applied; a mapping override updates that section key by key."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture(scope="session")
def ray_session() -> Iterator[Any]:
    """A small local Ray (2 CPUs, 100 MB object store, no dashboard), shared by all tests.

    Token auth is off for the test cluster; never `ray stop` (it kills every Ray on the machine).
    """
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",  # never a cluster a `ray start` left behind (see init_ray)
            num_cpus=2,
            object_store_memory=100 * 1024**2,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store. A new store runs MLflow's migrations (about 2.4 s
    on 2 cores); a copy of this file opens in milliseconds, so each test starts from a fresh,
    identical store without paying them."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def make_job(tmp_path: Path, mlflow_template: Path) -> Callable[..., JobSpec]:
    """Build a python-objective job whose Optuna and MLflow stores live in tmp_path."""
    if not (tmp_path / "mlflow.db").exists():
        shutil.copyfile(mlflow_template, tmp_path / "mlflow.db")

    def make(target: str = "objectives_for_tests:landscape", **overrides: Any) -> JobSpec:
        data: dict[str, Any] = {
            "study": "test-study",
            "storage": f"sqlite:///{tmp_path}/optuna.db",
            "tracking": f"sqlite:///{tmp_path}/mlflow.db",
            "task_types": ["caption", "count", "compare"],
            "objective": {
                "kind": "python",
                "target": target,
                "metric": "score",
                "direction": "maximize",
            },
            "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]},
            "resources": {"cpus_per_trial": 1, "max_in_flight": 1, "gpus_per_trial": 0},
        }
        return build(JobSpec, merge_sections(data, overrides), "test")

    return make


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small built-in world (600 training dialogues), its pool and the tiny model, built once."""
    from ablate.pool import ImportRequest, import_pool
    from ablate.world import WorldSpec, build_tiny_model, synth_world, world_corpus

    root = tmp_path_factory.mktemp("world")
    files = synth_world(WorldSpec(out=root / "world", n_train=600, n_bench_per_cell=1))
    model = build_tiny_model(root / "world" / "models" / "tiny-llava", world_corpus(files))
    import_pool(ImportRequest(source=files.train, out=root / "pool"))
    return {
        "root": root,
        "world": files.root,
        "train": files.train,
        "bench": files.bench_yaml,
        "pool": root / "pool",
        "model": model,
    }


@pytest.fixture(scope="session")
def world_texts(tiny_world: dict[str, Path]) -> list[str]:
    """The turns of 300 world dialogues: a corpus for the tiny tokenizers."""
    texts = []
    for line in tiny_world["train"].read_text().splitlines()[:300]:
        texts += [t["value"] for t in json.loads(line)["conversations"]]
    return texts


@pytest.fixture(scope="session")
def dialogue() -> list[dict[str, Any]]:
    """Three exchanges over two images, the last two answers contextual (LLaVA layout)."""
    return [
        {"from": "human", "value": "<image>\nWhat color is the background?"},
        {"from": "gpt", "value": "red"},
        {"from": "human", "value": "And this one? <image>"},
        {"from": "gpt", "value": "blue", "contextual": True},
        {"from": "human", "value": "Which did you name first?"},
        {"from": "gpt", "value": "red", "contextual": True},
    ]


@pytest.fixture(scope="session")
def tile_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 28 x 28 red square and a 56 x 28 (width x height) blue image: one tile, or a 1 x 2
    grid of 28-pixel tiles, for the AnyRes and image-splitting processors."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tile-images")
    out = {}
    for name, size, color in [("square", (28, 28), "red"), ("wide", (56, 28), "blue")]:
        Image.new("RGB", size, color).save(root / f"{name}.png")
        out[name] = str(root / f"{name}.png")
    return out


@pytest.fixture(scope="module")
def tiny_models(tiny_world: dict[str, Path], world_texts: list[str]) -> Callable[[str], Any]:
    """Load a tiny model family by its name in `TINY_FAMILIES`: built once per session, loaded
    once per module. `llava` is the world's own model (its tokenizer trained on the whole
    world); the others are built from `world_texts`."""
    from ablate.models import load_model
    from ablate.testing import TINY_FAMILIES

    loaded: dict[str, Any] = {}

    def load(name: str) -> Any:
        if name not in loaded:
            build = TINY_FAMILIES.get(name)
            folder = (
                tiny_world["model"]
                if name == "llava"
                else build(tiny_world["root"] / f"tiny-{name}", world_texts)
            )
            loaded[name] = load_model(folder)
        return loaded[name]

    return load


@pytest.fixture(scope="module")
def llava(tiny_models: Callable[[str], Any]) -> Any:
    """The world's tiny Llava (CLIP + Llama, a fixed token count per image), loaded."""
    return tiny_models("llava")


@pytest.fixture(scope="module")
def qwen(tiny_models: Callable[[str], Any]) -> Any:
    """A tiny random-weight Qwen2-VL (M-RoPE, image-size-dependent token counts), loaded."""
    return tiny_models("qwen2vl")


@pytest.fixture(scope="module")
def onevision(tiny_models: Callable[[str], Any]) -> Any:
    """A tiny random-weight LLaVA-OneVision (SigLIP + Qwen2, AnyRes tiling), loaded."""
    return tiny_models("onevision")


@pytest.fixture(scope="module")
def idefics3(tiny_models: Callable[[str], Any]) -> Any:
    """A tiny random-weight Idefics3 (SmolVLM family: image splitting into tagged tiles), loaded."""
    return tiny_models("idefics3")


@pytest.fixture(scope="session")
def world_examples(tiny_world: dict[str, Path]) -> Callable[[Any, int], list[Any]]:
    """The first n world dialogues, with their images, encoded for a loaded model."""

    def encode(loaded: Any, n: int) -> list[Any]:
        from ablate.trial.encode import DialogueEncoder

        encoder = DialogueEncoder(loaded.processor)
        out = []
        for line in tiny_world["train"].read_text().splitlines()[:n]:
            record = json.loads(line)
            paths = record.get("image", [])
            paths = [paths] if isinstance(paths, str) else paths
            images = [str(tiny_world["world"] / p) for p in paths]
            out.append(encoder.encode(record["conversations"], images))
        return out

    return encode


@pytest.fixture
def train_job(tiny_world: dict[str, Path], tmp_path: Path) -> Callable[..., JobSpec]:
    """A training job on the tiny world, stores in tmp_path; keyword overrides per section."""

    def make(**overrides: Any) -> JobSpec:
        data: dict[str, Any] = {
            "study": "train-test",
            "storage": f"sqlite:///{tmp_path}/optuna.db",
            "tracking": f"sqlite:///{tmp_path}/mlflow.db",
            "pool": str(tiny_world["pool"]),
            "bench": str(tiny_world["bench"]),
            "taxonomy": "skill",
            "task_types": ["colors", "layout", "compare", "lists"],
            "model": {"path": str(tiny_world["model"]), "lora": {"r": 8, "alpha": 16}},
            "train": {"epochs": 1, "lr": 5.0e-3, "batch_size": 8, "warmup_ratio": 0.1},
            "design": {"kind": "grid", "volumes": [48], "balance": [1.0], "seeds": [0]},
            "resources": {"cpus_per_trial": 1, "max_in_flight": 2, "gpus_per_trial": 0},
        }
        return build(JobSpec, merge_sections(data, overrides), "test")

    return make


@pytest.fixture
def judge_server() -> Iterator[Any]:
    """A real OpenAI-compatible server on loopback (port 0: a free port): chat completions and
    /v1/models, scripted by `server.mode`, `key`, `models`, `schema` (see
    tests/judge_server_for_tests.py); `server.seen` records (authorization header, body)."""
    from judge_server_for_tests import start_server

    server = start_server()
    yield server
    server.shutdown()
    server.server_close()


def free_port() -> int:
    """A TCP port free on loopback now (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_mlflow(root: Path, *extra: str) -> Iterator[str]:
    """`mlflow server` on a free loopback port (`extra`: more of its options), its stores in
    `root`; its URL while it runs."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{root}/mlflow.db", *extra]
    cmd += ["--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(
                        f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer within 60 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a free loopback port, its stores in a temp folder; its URL."""
    with serve_mlflow(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url
