"""The `ablate` command: help of every command, data and mixture commands, and user mistakes
reported as one `ablate: error:` line (file, key, fix) with exit status 2 and no traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths_for_tests import REPO

from ablate.cli import main
from ablate.config import DesignSpec
from ablate.mixture import Mixture

REPO = REPO
DEMO_JOB = REPO / "jobs" / "demo.yaml"
BALANCED = REPO / "mixtures" / "balanced.yaml"
HEAVY = ("torch", "ray", "mlflow", "transformers", "optuna", "peft")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 300-dialogue world and its pool.

    task_type: single_image 172, multi_image 78, text_only 50;
    skill: colors 87, layout 85, compare 78, lists 50.
    """
    from ablate.pool import ImportRequest, import_pool
    from ablate.world import WorldSpec, synth_world

    root = tmp_path_factory.mktemp("cli-world")
    files = synth_world(WorldSpec(out=root / "world", n_train=300))
    import_pool(ImportRequest(source=files.train, out=root / "pool"))
    return {
        "root": root,
        "world": files.root,
        "train": files.train,
        "pool": root / "pool",
        "bench": files.bench_yaml,
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    """Run a command that must fail as a user error; return its one-line message."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("ablate: error: "), err
    assert "Traceback" not in out + err
    return err.removeprefix("ablate: error: ").strip()


def write_job(path: Path, world: dict[str, Path], **changes: Any) -> Path:
    """jobs/demo.yaml pointed at the test world, with stores next to the job file."""
    data = copy.deepcopy(yaml.safe_load(DEMO_JOB.read_text()))
    data |= {"pool": str(world["pool"]), "bench": str(world["bench"])}
    data["model"]["path"] = str(world["world"] / "models" / "tiny-llava")
    data["design"] = {"kind": "grid", "volumes": [40, 80], "balance": [0.4, 1.0], "seeds": [0]}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- --help


HELP = {
    (): ["demo", "data", "mixture", "trial", "sweep", "status", "report", "Data-mixture"],
    ("demo",): ["--out", "--set", "KEY=VALUE", "resumes the sweep"],
    ("data",): ["synth", "import", "show"],
    ("data", "synth"): ["--out", "--n-train", "--seed", "--no-model", "default 8000"],
    ("data", "import"): [
        "source",
        "--out",
        "--image-root",
        "--on-invalid",
        "{error,skip}",
        "--no-check-images",
    ],
    ("data", "show"): ["pool", "pool folder"],
    ("mixture",): ["show", "materialize"],
    ("mixture", "show"): ["mixture", "--pool", "--set", "mixture YAML file"],
    ("mixture", "materialize"): ["mixture", "--pool", "--out", "Parquet", "--set"],
    ("trial",): ["job", "--mixture", "--json", "--set", "design's first mixture"],
    ("sweep",): ["job", "--address", "RAY_ADDRESS", "--set", "resumes"],
    ("status",): ["job", "--set"],
    ("report",): ["job", "--out", "--set"],
    ("propose",): ["job", "--set"],
    ("plan",): ["job", "--effect", "--noise", "--pilot", "--set", "80% power"],
}


def known_keys(cls: Any) -> str:
    """The key list a config error prints for dataclass `cls` (fields a user may set)."""
    import dataclasses

    return ", ".join(
        sorted(f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal"))
    )


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "ablate")
def test_help_of_every_command(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"usage: ablate {' '.join(command)}".rstrip())
    assert "-h, --help" in out
    for word in HELP[command]:
        assert word in out, word
    if "--set" in HELP[command]:
        example = "volume=2000" if command[0] == "mixture" else "train.lr=1e-3"  # a mixture key
        assert f"override a key of the YAML file, e.g. --set {example}" in " ".join(out.split())


def test_every_command_is_covered_by_the_help_test() -> None:
    from ablate.cli import build_parser

    def commands(parser: Any, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        found = {prefix}
        for action in parser._actions:
            choices = action.choices if isinstance(action.choices, dict) else {}
            for name, sub in choices.items():
                if hasattr(sub, "_actions"):
                    found |= commands(sub, (*prefix, name))
        return found

    assert commands(build_parser(), ()) == set(HELP)


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "the following arguments are required: COMMAND" in capsys.readouterr().err


def test_help_loads_no_heavy_library() -> None:
    script = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from ablate.cli import main\n"
        "try:\n    main(['sweep', '--help'])\n"
        "except SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], time.perf_counter() - t, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded, _ = done.stderr.rsplit("] ", 1)
    assert loaded == "["  # none of torch, ray, mlflow, transformers, optuna, peft
    # how fast: benchmarks/startup_benchmark.py (timings are measured there, not asserted here)

    ablate = Path(sys.executable).parent / "ablate"
    done = subprocess.run([str(ablate), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: ablate ")


# --------------------------------------------------------------------------- data commands


def test_data_synth_is_deterministic(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(
        capsys, "data", "synth", "--out", tmp_path / "a", "--n-train", "50", "--no-model"
    )
    assert code == 0
    assert f"wrote 50 training dialogues to {tmp_path / 'a' / 'train.jsonl'}" in out
    assert "tiny offline model" not in out
    train = (tmp_path / "a" / "train.jsonl").read_bytes()
    assert len(train.splitlines()) == 50
    assert all(json.loads(line)["conversations"] for line in train.splitlines())
    assert (tmp_path / "a" / "bench.jsonl").stat().st_size > 0
    assert (tmp_path / "a" / "bench.yaml").is_file()
    assert not (tmp_path / "a" / "models").exists()

    assert (
        run_cli(capsys, "data", "synth", "--out", tmp_path / "b", "--n-train", "50", "--no-model")[
            0
        ]
        == 0
    )
    assert (tmp_path / "b" / "train.jsonl").read_bytes() == train
    bench = (tmp_path / "a" / "bench.jsonl").read_bytes()
    assert (tmp_path / "b" / "bench.jsonl").read_bytes() == bench

    assert (
        run_cli(
            capsys,
            "data",
            "synth",
            "--out",
            tmp_path / "c",
            "--n-train",
            "50",
            "--seed",
            "1",
            "--no-model",
        )[0]
        == 0
    )
    assert (tmp_path / "c" / "train.jsonl").read_bytes() != train


def label_tables(text: str) -> dict[str, dict[str, int]]:
    """The per-taxonomy tables printed by `ablate data show`."""
    tables: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1:] == ["rows", "share"]:
            current = tables[parts[0]] = {}
        elif current is not None and len(parts) == 3 and parts[2].endswith("%"):
            current[parts[0]] = int(parts[1].replace(",", ""))
        elif not parts:
            current = None
    return tables


def test_data_import_and_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    code, out, err = run_cli(capsys, "data", "import", world["train"], "--out", tmp_path / "pool")
    assert code == 0
    assert "300 records (" in err and "/s)" in err
    assert out.startswith(f"imported 300 dialogues into {tmp_path / 'pool'}\n")
    code, shown, _ = run_cli(capsys, "data", "show", tmp_path / "pool")
    assert code == 0
    assert "rows         300" in shown
    assert shown in out  # import prints the same table
    tables = label_tables(shown)
    assert set(tables) == {"task_type", "domain", "skill"}
    assert tables["task_type"] == {"single_image": 172, "multi_image": 78, "text_only": 50}
    assert tables["skill"] == {"colors": 87, "layout": 85, "compare": 78, "lists": 50}
    for counts in tables.values():
        assert sum(counts.values()) == 300
    assert "single_image        172   57.3%" in shown


def test_data_import_bad_record_names_id_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    lines = world["train"].read_text().splitlines()[:5]
    bad = {
        "id": "oops-1",
        "conversations": [{"from": "human", "value": "hi"}, {"from": "human", "value": "again"}],
    }
    lines.insert(3, json.dumps(bad))
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n")
    msg = fails(
        capsys, "data", "import", source, "--out", tmp_path / "pool", "--image-root", world["world"]
    )
    assert msg.startswith(f"{source}: record `oops-1` (line 4): roles must alternate human/gpt")
    assert "--on-invalid skip" in msg
    assert not (tmp_path / "pool").exists()  # nothing half-written

    code, out, _ = run_cli(
        capsys,
        "data",
        "import",
        source,
        "--out",
        tmp_path / "pool",
        "--image-root",
        world["world"],
        "--on-invalid",
        "skip",
    )
    assert code == 0
    assert "imported 5 dialogues" in out and "skipped 1" in out
    report = (tmp_path / "pool" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(r) | {"reason": ""} for r in report] == [
        {"id": "oops-1", "line": 4, "code": "roles", "reason": ""}
    ]


def test_data_import_unparsable_line_and_missing_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "x.jsonl"
    source.write_text("{not json\n")
    msg = fails(capsys, "data", "import", source, "--out", tmp_path / "pool")
    assert msg.startswith(f"{source.resolve()}: line 1: unparsable JSON line")
    msg = fails(capsys, "data", "import", tmp_path / "none.json", "--out", tmp_path / "pool")
    assert (
        msg == f"{tmp_path / 'none.json'}: no such source file (a LLaVA-style JSON list or JSONL)"
    )
    msg = fails(capsys, "data", "show", tmp_path / "nopool")
    assert msg == (
        f"{tmp_path / 'nopool'}: not a pool folder (does not exist); make one with "
        f"`ablate data import SOURCE --out {tmp_path / 'nopool'}`"
    )


# --------------------------------------------------------------------------- mixture commands


def test_mixture_materialize_writes_parquet_deterministically(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "f.parquet"
    args = ("mixture", "materialize", BALANCED, "--pool", world["pool"], "--set", "volume=40")
    code, printed, _ = run_cli(capsys, *args, "--out", out)
    assert code == 0
    assert printed.startswith(f"wrote 40 row ids to {out} (multi_image 20, single_image 20)")
    table = pq.read_table(out)
    assert table.num_rows == 40
    assert {"id", "task_type"} <= set(table.column_names)
    assert (
        sorted(table.column("task_type").to_pylist())
        == ["multi_image"] * 20 + ["single_image"] * 20
    )
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == 40 and all(i.startswith("world-") for i in ids)

    assert run_cli(capsys, *args, "--out", tmp_path / "g.parquet")[0] == 0
    again = pq.read_table(tmp_path / "g.parquet")
    assert again.equals(table)
    assert (tmp_path / "g.parquet").read_bytes() == out.read_bytes()


def test_mixture_show(capsys: pytest.CaptureFixture[str], world: dict[str, Path]) -> None:
    code, out, _ = run_cli(
        capsys,
        "mixture",
        "show",
        BALANCED,
        "--pool",
        world["pool"],
        "--set",
        "volume=100",
        "--set",
        "name=b100",
    )
    assert code == 0
    assert "mixture      b100" in out
    assert "volume       100 rows" in out
    assert "single_image   50.00%         50        172     0.29" in out
    assert "normalised entropy 0.631" in out  # over the pool's 3 labels, as a trial records it


GOOD = {"name": "t", "volume": 40, "proportions": {"single_image": 0.5, "multi_image": 0.5}}

MIXTURE_ERRORS = [
    pytest.param(
        GOOD | {"volumne": 3},
        "m.yaml: unknown key `volumne` (did you mean `volume`?); known keys here: "
        + known_keys(Mixture),
        id="unknown-key",
    ),
    pytest.param(
        GOOD | {"proportions": {"single_image": 1.5, "multi_image": -0.5}},
        "m.yaml: `proportions.multi_image` is negative (-0.5); shares must be >= 0",
        id="negative",
    ),
    pytest.param(
        GOOD | {"proportions": {"single_image": 0.5, "multi_image": 0.4}},
        "m.yaml: `proportions` sum to 0.9, not 1; normalised they would be "
        "{single_image: 0.5556, multi_image: 0.4444}",
        id="sum",
    ),
    pytest.param(
        GOOD | {"proportions": {"single_image": 0.5, "video": 0.5}},
        "m.yaml: `proportions.video`: the pool's `task_type` has no label `video`; it has: "
        "multi_image (78), single_image (172), text_only (50)",
        id="unknown-type",
    ),
    pytest.param(
        GOOD | {"volume": 4000},
        "m.yaml: `volume` needs 2,000 rows of multi_image, the pool has 78 and max_repeat is 1; "
        "lower `volume` to at most 156, raise `max_repeat` to 26, or change `proportions`",
        id="volume-too-large",
    ),
    pytest.param(
        GOOD | {"taxonomy": "genre"},
        "m.yaml: `taxonomy` 'genre' is not a label column of the pool; "
        "available: task_type, domain, skill",
        id="taxonomy",
    ),
    pytest.param(
        GOOD | {"taxonomy": "skil"},
        "m.yaml: `taxonomy` 'skil' is not a label column of the pool (did you mean `skill`?); "
        "available: task_type, domain, skill",
        id="taxonomy-misspelt",
    ),
    pytest.param(
        GOOD | {"volume": "lots"}, "m.yaml: `volume` must be a number, got 'lots'", id="type"
    ),
    pytest.param(
        GOOD | {"max_repeat": 0},
        "m.yaml: `max_repeat` must be an integer >= 1 (1 = no upsampling), got 0",
        id="max-repeat",
    ),
]


@pytest.mark.parametrize("command", ["show", "materialize"])
@pytest.mark.parametrize(("data", "expected"), MIXTURE_ERRORS)
def test_mixture_mistakes(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    world: dict[str, Path],
    command: str,
    data: dict[str, Any],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    extra = ["--out", "sel.parquet"] if command == "materialize" else []
    assert fails(capsys, "mixture", command, "m.yaml", "--pool", world["pool"], *extra) == expected
    assert not Path("sel.parquet").exists()


def test_mixture_set_override_mistakes(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    base = ("mixture", "show", BALANCED, "--pool", world["pool"])
    assert fails(capsys, *base, "--set", "volume") == (
        "--set 'volume': expected KEY=VALUE, for example --set train.lr=1e-3"
    )
    assert fails(capsys, *base, "--set", "volumes=10") == (
        f"{BALANCED}: unknown key `volumes` (did you mean `volume`?); known keys here: "
        + known_keys(Mixture)
    )
    # 1e9 is a number (PyYAML alone would read a string), and too large for this pool
    msg = fails(capsys, *base, "--set", "volume=1e9")
    assert msg.startswith(f"{BALANCED}: `volume` needs 500,000,000 rows of multi_image")


def test_mixture_missing_and_broken_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    pool = ("--pool", world["pool"])
    missing = tmp_path / "none.yaml"
    assert fails(capsys, "mixture", "show", missing, *pool) == f"{missing}: no such file"
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nvolume: [40\n")
    msg = fails(capsys, "mixture", "materialize", broken, *pool, "--out", tmp_path / "s.parquet")
    assert msg.startswith(f"{broken}:3:1: not valid YAML: ")
    parquet = tmp_path / "sel.parquet"
    parquet.write_bytes(b"PAR1\x15\x04\x15\x80\xff\xfe" * 10)  # the wrong file for a mixture
    assert fails(capsys, "mixture", "show", parquet, *pool) == (
        f"{parquet}: not a text file (not UTF-8); expected a YAML file"
    )
    msg = fails(capsys, "mixture", "show", BALANCED, "--pool", tmp_path)
    assert msg.startswith(f"{tmp_path}: not a pool folder (has no pool.arrow + manifest.json)")


# --------------------------------------------------------------------------- job mistakes


def test_job_unknown_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    job = write_job(tmp_path / "job.yaml", world, design={"volume": [40]})
    for command in ("sweep", "trial", "status"):
        msg = fails(capsys, command, job)
        assert msg == (
            f"{job}: unknown key `design.volume` (did you mean `design.volumes`?); "
            "known keys here: " + known_keys(DesignSpec)
        )
    msg = fails(capsys, "report", job, "--out", tmp_path / "r")
    assert "did you mean `design.volumes`?" in msg


def test_job_wrong_type_and_missing_study(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    job = write_job(tmp_path / "job.yaml", world, train={"lr": "fast"})
    assert fails(capsys, "sweep", job) == f"{job}: `train.lr` must be a number, got 'fast'"
    job = write_job(tmp_path / "job.yaml", world)
    assert fails(capsys, "sweep", job, "--set", "design.volumes=40") == (
        f"--set design.volumes=40 (over {job}): `design.volumes` must be a list, got 40"
    )
    assert fails(capsys, "sweep", job, "--set", "train.lr") == (
        "--set 'train.lr': expected KEY=VALUE, for example --set train.lr=1e-3"
    )
    data = yaml.safe_load(job.read_text())
    del data["study"]
    job.write_text(yaml.safe_dump(data))
    assert fails(capsys, "sweep", job) == f"{job}: missing required key `study`"


def test_job_task_type_the_pool_lacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    job = write_job(tmp_path / "job.yaml", world, task_types=["colors", "painting"])
    assert fails(capsys, "sweep", job) == (
        f"{job}: `task_types` lists painting, which the pool's `skill` lacks; "
        "the pool has colors, compare, layout, lists"
    )
    assert not (tmp_path / "optuna.db").exists()


def test_job_taxonomy_the_pool_lacks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    job = write_job(tmp_path / "job.yaml", world, taxonomy="genre")
    assert fails(capsys, "sweep", job) == (
        f"{job}: `taxonomy` 'genre' is not a label column of the pool {world['pool']}; "
        "available: task_type, domain, skill"
    )
    job = write_job(tmp_path / "job.yaml", world, taxonomy="skil")
    assert fails(capsys, "sweep", job) == (
        f"{job}: `taxonomy` 'skil' is not a label column of the pool {world['pool']} (did you "
        "mean `skill`?); available: task_type, domain, skill"
    )


def test_sweep_stops_before_training_when_the_pool_cannot_supply_a_volume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, world: dict[str, Path]
) -> None:
    job = write_job(tmp_path / "job.yaml", world, design={"volumes": [40, 250, 2000]})
    msg = fails(capsys, "sweep", job)  # the pool check, before Ray, Optuna or a model start
    assert msg == (
        f"{job}: `design.volumes` 250, 2000 cannot be drawn from the pool {world['pool']}: "
        "design point v250-b0.40-s0 needs 216 rows of `colors`, the pool's `skill` has 87. "
        "Lower `design.volumes` to at most 100 (the largest volume every `design.balance` "
        "level can draw), or import a larger pool"
    )
    # No study, no tracking store, no run folder: nothing started.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"]


def test_missing_job_file_and_invalid_yaml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for command in ("sweep", "trial", "status"):
        assert (
            fails(capsys, command, tmp_path / "nope.yaml")
            == f"{tmp_path / 'nope.yaml'}: no such file"
        )
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: x\n  design: 1\n")
    msg = fails(capsys, "sweep", bad)
    assert msg.startswith(f"{bad}:2:9: not valid YAML: ")


def test_status_of_a_missing_study_leaves_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        "study: nothing-yet\nstorage: sqlite:///optuna.db\ntask_types: [a, b]\n"
        "objective: {kind: python, target: 'math:fsum'}\n"
    )
    assert main(["status", str(job)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ablate: error: no study `nothing-yet`") and "ablate sweep" in err
    assert not (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize("command", ["sweep", "status", "report"])
def test_an_unreachable_storage_is_one_line_without_its_password(
    command: str, make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ablate.config import to_dict

    data = to_dict(make_job(target="objectives_for_tests:landscape"))
    data["storage"] = "postgresql://ablate:s3cret-pw@127.0.0.1:1/studies"  # nothing listens on 1
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    extra = ["--out", str(tmp_path / "report")] if command == "report" else []
    assert main([command, str(path), *extra]) == 2
    out, err = capsys.readouterr()
    assert "s3cret-pw" not in out + err
    (line,) = err.strip().splitlines()
    assert "postgresql://ablate:***@127.0.0.1:1/studies" in line
    assert "check that the database server runs" in line or "cannot be read" in line


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        # /proc takes no new file, even from root: as a read-only folder (or mount)
        (
            "sqlite:////proc/optuna.db",
            "SQLite could not open or write /proc/optuna.db: the file "
            "and its folder must be writable",
        ),
        ("sqlite:///garbage.db", "garbage.db is not a SQLite database"),
        (
            "mysql://u:pw@127.0.0.1:1/x",
            "(ImportError: No module named 'MySQLdb'); no driver for "
            "mysql:// is installed here: pip install mysqlclient",
        ),
    ],
)
def test_a_storage_that_is_no_server_problem_says_what_it_is(
    storage: str, says: str, make_job: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: every one ended "check that the database server runs": SQLite has no server)
    import importlib.util

    if storage.startswith("mysql") and importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("mysqlclient is installed here")
    from ablate.config import to_dict

    (tmp_path / "garbage.db").write_text("not a database, but a file of text\n" * 200)
    data = to_dict(make_job(target="objectives_for_tests:landscape"))
    data["storage"] = storage
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["sweep", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert says in line and "database server" not in line and "pw" not in line


def test_an_import_over_a_pool_says_it_replaced_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "d.jsonl"
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    source.write_text(json.dumps({"id": "a", "conversations": turns}) + "\n")
    code, out, err = run_cli(capsys, "data", "import", source, "--out", tmp_path / "pool")
    assert code == 0 and "imported 1 dialogue into" in out and "replaced" not in err
    source.write_text(source.read_text() + json.dumps({"id": "b", "conversations": turns}) + "\n")
    code, out, err = run_cli(capsys, "data", "import", source, "--out", tmp_path / "pool")
    assert code == 0 and "imported 2 dialogues into" in out
    assert "replaced the pool that was there (1 row; now new dialogues)" in err


def test_sigterm_stops_any_command_with_its_line_and_143(tmp_path: Path) -> None:
    """Before: a SIGTERM before a sweep's Ray started (or to any other command) ended the
    process silently with -15. The command reads its source from a FIFO this test holds open,
    so the signal lands while it runs, however slow the machine (a `data synth` polled for
    its first image once finished before the signal was sent, on a loaded CI machine)."""
    import errno
    import os
    import signal
    import time

    source = tmp_path / "dialogues.jsonl"
    os.mkfifo(source)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ablate.cli",
            "data",
            "import",
            str(source),
            "--out",
            str(tmp_path / "pool"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:  # a FIFO opens for writing once the command has opened it: main() runs
        try:
            writer = os.open(source, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as err:
            assert err.errno == errno.ENXIO and time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    os.write(writer, (json.dumps({"id": "a", "conversations": turns}) + "\n").encode())
    # the writer still open, the command waits for the rest of its source: the signal comes
    # now. Then EOF: a read blocked in C (pyarrow retries EINTR) returns, and the pending
    # signal stops the command at its next line of Python
    proc.send_signal(signal.SIGTERM)
    os.close(writer)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "ablate: stopped by SIGTERM; rerun the same command to start again" in err
    assert "Traceback" not in err


def test_sigterm_turned_into_a_plain_interrupt_still_exits_143(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a SIGTERM landing inside Ray's wait came out as a plain KeyboardInterrupt (Ray
    turns any interrupt into one): "interrupted", exit 130 (review h, SIGTERM to a sweep's
    process group right after its resume line)."""
    import os
    import signal
    import time

    cli_main = sys.modules["ablate.cli.main"]

    def ray_like(args: Any) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # what Ray's wait raises for any interrupt
        return 0

    monkeypatch.setattr(cli_main, "run", ray_like)
    assert main(["status", "job.yaml"]) == 143
    assert "ablate: stopped by SIGTERM; rerun the same command to resume" in capsys.readouterr().err

    def ctrl_c(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "run", ctrl_c)  # the next command's Ctrl-C is no SIGTERM
    assert main(["status", "job.yaml"]) == 130


def test_a_broken_pipe_other_than_stdout_is_no_quiet_success(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `ablate report` whose MLflow worker process had ended (a tracking server that
    did not answer) got BrokenPipeError writing to it, taken for `| head`: exit 0, no output,
    and the report folder removed."""
    cli_main = sys.modules["ablate.cli.main"]  # (`ablate.cli.main` is also the function)

    def worker_gone(args: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_main, "run", worker_gone)
    with pytest.raises(BrokenPipeError):
        main(["status", "job.yaml"])


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """`ablate ... | head`: the reader leaves early; exit 0, nothing on stderr."""
    script = tmp_path / "many.py"
    script.write_text(
        "import sys\n"
        "from ablate.cli import main\n"
        "def many(args):\n"
        "    for i in range(100000):\n"
        "        print('line', i)\n"
        "    return 0\n"
        "sys.modules['ablate.cli.main'].run = many\n"
        "sys.exit(main(['status', 'job.yaml']))\n"
    )
    proc = subprocess.run(
        f"set -o pipefail; {sys.executable} {script} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "line 0\n", "")
