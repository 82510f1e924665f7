"""Job files: YAML + `--set` overrides -> a checked JobSpec, with precise errors naming file and key."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths_for_tests import REPO

from ablate.config import DesignSpec, JobSpec, apply_override, build, read_job, read_yaml
from ablate.errors import UserError
from ablate.plan import job_task_types, load_job, trial_mixture, validate_job

DEMO_JOB = REPO / "jobs" / "demo.yaml"


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 300-dialogue world and its pool (skills colors 87, layout 85, compare 78, lists 50)."""
    from ablate.pool import ImportRequest, import_pool
    from ablate.world import WorldSpec, synth_world

    root = tmp_path_factory.mktemp("config-world")
    files = synth_world(WorldSpec(out=root / "world", n_train=300))
    import_pool(ImportRequest(source=files.train, out=root / "pool"))
    return {"pool": root / "pool", "bench": files.bench_yaml, "world": files.root}


def demo_data() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DEMO_JOB.read_text()))


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- --set overrides


def test_override_parses_numbers_lists_and_strings_as_yaml() -> None:
    data: dict[str, Any] = {"train": {"lr": 0.1}, "study": "a"}
    for item in (
        "train.lr=1e-3",
        "train.batch_size=4",
        "design.volumes=[100, 200]",
        "study=other",
        "train.max_steps=null",
        "objective.direction=minimize",
    ):
        apply_override(data, item)
    assert data["train"] == {"lr": 0.001, "batch_size": 4, "max_steps": None}
    assert isinstance(data["train"]["lr"], float)
    assert data["design"] == {"volumes": [100, 200]}  # nested keys are created
    assert data["study"] == "other"
    assert data["objective"] == {"direction": "minimize"}


def test_override_scientific_notation_is_a_float_both_in_set_and_in_files(tmp_path: Path) -> None:
    # PyYAML alone reads `1e-3` as a string; the `--set train.lr=1e-3` of the help must work.
    path = write(
        tmp_path / "job.yaml",
        "study: s\ntrain: {lr: 2e-4}\nobjective: {kind: python, "
        "target: 'm:f'}\ntask_types: [a, b]\n",
    )
    assert load_job(path).train.lr == pytest.approx(2e-4)
    assert "must be positive" in error_of(load_job, path, ["train.lr=-1E+2"])  # a number, checked
    job = load_job(path, ["train.lr=5E-3", "design.volumes=[1e3]"])
    assert job.train.lr == pytest.approx(5e-3)
    assert job.design.volumes == (1000,)


def test_override_creates_deep_nested_keys_and_replaces_values() -> None:
    data: dict[str, Any] = {"model": {"path": "x"}}
    apply_override(data, "model.lora.r=8")
    apply_override(data, "model.path=other")
    assert data == {"model": {"path": "other", "lora": {"r": 8}}}


def test_override_value_may_contain_equals_and_spaces_around_key() -> None:
    data: dict[str, Any] = {}
    apply_override(data, " objective.target =pkg.mod:f")
    apply_override(data, "tracking=http://host:5000/?a=b")
    assert data == {"objective": {"target": "pkg.mod:f"}, "tracking": "http://host:5000/?a=b"}


@pytest.mark.parametrize("item", ["foo", "=3", "  =x"])
def test_bad_override_says_key_value_is_expected(item: str) -> None:
    msg = error_of(apply_override, {}, item)
    assert msg == f"--set {item!r}: expected KEY=VALUE, for example --set train.lr=1e-3"


def test_override_through_a_non_mapping_names_the_part_and_file() -> None:
    msg = error_of(apply_override, {"train": {"lr": 0.1}}, "train.lr.x=1", "job.yaml")
    assert msg == "job.yaml: --set 'train.lr.x=1': `lr` is not a mapping, cannot set `train.lr.x`"


# --------------------------------------------------------------------------- read_yaml


def test_read_yaml_applies_overrides_in_order(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", "x: 1\ny: {z: 2}\n")
    assert read_yaml(path, ["y.z=3", "x=[1, 2]", "x=4"]) == {"x": 4, "y": {"z": 3}}
    assert read_yaml(write(tmp_path / "empty.yaml", "# nothing\n")) == {}


def test_read_yaml_missing_file(tmp_path: Path) -> None:
    assert error_of(read_yaml, tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: no such file"


def test_read_yaml_a_folder_is_no_file(tmp_path: Path) -> None:
    assert error_of(read_yaml, tmp_path) == (  # review q#14: not "no such file"
        f"{tmp_path}: is a folder, not a YAML file; give a file (YAML files there: none)"
    )


def test_read_yaml_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "study: x\ndesign: {volumes: [1, 2\n")
    msg = error_of(read_yaml, path)  # one line: file:line:column, then the problem
    assert msg.startswith(f"{path}:3:1: not valid YAML: ") and "\n" not in msg
    twice = write(tmp_path / "twice.yaml", "study: x\ntrain: {lr: 1}\nstudy: y\n")
    assert error_of(read_yaml, twice) == (
        f"{twice}:3:1: not valid YAML: key `study` appears twice (lines 1 and 3)"
    )  # (PyYAML kept the last one silently)
    inf = write(tmp_path / "inf.yaml", "study: x\ntrain: {lr: .inf}\n")
    with pytest.raises(UserError, match=r"`train.lr` must be a finite number, got inf"):
        load_job(inf)


def test_read_yaml_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    msg = error_of(read_yaml, write(tmp_path / "list.yaml", "- a\n- b\n"))
    assert msg.endswith("expected a mapping of keys at the top level, found list")


def test_read_yaml_binary_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "selection.yaml"
    path.write_bytes(b"PAR1\xff\xfe\x00\x81" * 20)
    assert error_of(read_yaml, path) == f"{path}: not a text file (not UTF-8); expected a YAML file"


# --------------------------------------------------------------------------- build: keys and types


def test_demo_job_loads(tmp_path: Path) -> None:
    job = load_job(DEMO_JOB)
    assert job.study == "demo"
    assert job.taxonomy == "skill"
    assert job.task_types == ("colors", "layout", "compare", "lists")
    assert job.design.volumes == (250, 750, 2000)
    assert job.train.lr == pytest.approx(5e-3)
    assert job.source == str(DEMO_JOB.resolve())


def test_unknown_key_suggests_the_close_match() -> None:
    msg = error_of(build, JobSpec, {"study": "s", "desing": {}}, "job.yaml")
    assert msg.startswith(
        "job.yaml: unknown key `desing` (did you mean `design`?); known keys here: "
    )
    assert "design, mixture, model, models, objective" in msg


def test_unknown_nested_key_suggests_the_dotted_key() -> None:
    msg = error_of(build, JobSpec, {"study": "s", "design": {"volume": [1]}}, "job.yaml")
    assert msg == (
        "job.yaml: unknown key `design.volume` (did you mean `design.volumes`?); "
        "known keys here: " + ", ".join(sorted(f.name for f in dataclasses.fields(DesignSpec)))
    )
    msg = error_of(build, JobSpec, {"study": "s", "model": {"lora": {"rank": 4}}}, "j.yaml")
    assert msg.startswith("j.yaml: unknown key `model.lora.rank`")
    assert "known keys here: alpha, dropout, modules_to_save, r, target_modules" in msg


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    msg = error_of(build, JobSpec, {"study": "s", "zzzzzz": 1}, "job.yaml")
    assert "did you mean" not in msg
    assert msg.startswith("job.yaml: unknown key `zzzzzz`; known keys here: bench, design,")


def test_internal_source_key_is_not_a_job_key() -> None:
    msg = error_of(build, JobSpec, {"study": "s", "source": "elsewhere.yaml"}, "job.yaml")
    assert msg.startswith("job.yaml: unknown key `source`")
    assert "source" not in msg.split("known keys here: ")[1].split(", ")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"train": {"lr": "fast"}}, "job.yaml: `train.lr` must be a number, got 'fast'"),
        (
            {"train": {"batch_size": 2.5}},
            "job.yaml: `train.batch_size` must be an integer, got 2.5",
        ),
        (
            {"train": {"batch_size": True}},
            "job.yaml: `train.batch_size` must be an integer, got True",
        ),
        ({"design": {"volumes": 5}}, "job.yaml: `design.volumes` must be a list, got 5"),
        ({"task_types": "colors"}, "job.yaml: `task_types` must be a list, got 'colors'"),
        (
            {"design": {"seeds": [0, "a"]}},
            "job.yaml: `design.seeds[1]` must be an integer, got 'a'",
        ),
        ({"design": 5}, "job.yaml: `design`: expected a mapping, found 5"),
        ({"model": {"lora": [1]}}, "job.yaml: `model.lora`: expected a mapping, found [1]"),
        (
            {"objective": {"direction": "up"}},
            "job.yaml: `objective.direction` must be one of maximize, minimize; got 'up'",
        ),
        ({"study": ["a"]}, "job.yaml: `study` must be a string, got ['a']"),
    ],
)
def test_wrong_types_name_the_dotted_key_and_file(data: dict[str, Any], expected: str) -> None:
    assert error_of(build, JobSpec, {"study": "s", **data}, "job.yaml") == expected


def test_integral_float_is_an_integer_and_int_is_a_float() -> None:
    job = build(JobSpec, {"study": "s", "train": {"batch_size": 4.0, "lr": 1}}, "j")
    assert job.train.batch_size == 4 and isinstance(job.train.batch_size, int)
    assert job.train.lr == 1.0 and isinstance(job.train.lr, float)


def test_missing_study_is_required(tmp_path: Path) -> None:
    data = demo_data()
    del data["study"]
    path = write(tmp_path / "job.yaml", data)
    assert error_of(load_job, path) == f"{path}: missing required key `study`"


def test_empty_study_name(tmp_path: Path) -> None:
    path = write(tmp_path / "job.yaml", demo_data())
    assert error_of(load_job, path, ["study=' '"]) == (
        f"--set study=' ' (over {path}): `study` must be a non-empty name"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("design.volumes=[100, 0]", "`design.volumes[1]` must be a positive number of rows, got 0"),
        (
            "design.balance=[1.5]",
            "`design.balance[0]` must lie in 0..1 (normalised entropy), got 1.5",
        ),
        ("design.seeds=[]", "`design.volumes`, `design.balance` and `design.seeds` need at least"),
        ("design.seeds=[0, 1, 0]", "`design.seeds` lists 0 more than once; each value is one"),
        (
            "design={kind: search, seeds: [0, 1]}",
            "a search runs each mixture once, at one seed; `design.seeds` lists [0, 1]",
        ),
        (
            "design={kind: search, volumes: [1000, 5000]}",
            "but a search without `design.search_volume: true` runs only the first",
        ),
        (
            "design={kind: search, prune: true, multi_objective: volume}",
            "`design.prune` cannot go with `design.multi_objective: volume`",
        ),
        ("design.volumes=[1000, 5000.0, 5000]", "`design.volumes` lists 5000 more than once"),
        ("design.min_share=1", "`design.min_share` is a share in [0, 1/k), got 1.0"),
        ("train.lr=0", "`train.lr` must be positive, got 0.0"),
        ("train.lr=.nan", "`train.lr` must be a finite number, got nan"),
        ("train.max_steps=0", "`train.max_steps` must be positive, got 0"),
        ("resources.max_in_flight=0", "`resources.max_in_flight` must be positive, got 0"),
        ("resources.gpus_per_trial=-1", "`resources.gpus_per_trial` must be 0 or more, got -1.0"),
        ("model.lora.r=0", "`model.lora.r` must be positive, got 0"),
        (
            "train.pack_tokens=16",
            "`train.pack_tokens` (16) must be 0 (automatic) or at least `train.max_length`",
        ),
        (
            "train.warmup_ratio=1.5",
            "`train.warmup_ratio` and `model.lora.dropout` must lie in [0, 1)",
        ),
        ("task_types=[colors,colors]", "`task_types` lists a type twice"),
        ("pool=null", "`pool` is required when objective.kind is train"),
        ("objective.kind=python", "`objective.target` must be `module:function`"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path: Path, override: str, expected: str) -> None:
    path = write(tmp_path / "job.yaml", demo_data())
    msg = error_of(load_job, path, [override])
    # review q#9: a bad `--set` value is said of that option (the file was fine)
    first = override.partition("=")[0]
    assert msg.startswith(f"--set {override} (over {path}): " if first in expected else f"{path}")
    assert expected in msg


def test_set_overrides_reach_the_job(tmp_path: Path) -> None:
    path = write(tmp_path / "job.yaml", demo_data())
    job = load_job(
        path,
        ["design.volumes=[10, 20]", "train.lr=1e-3", "model.lora.r=4", "study=renamed"],
    )
    assert job.design.volumes == (10, 20)
    assert job.train.lr == pytest.approx(1e-3)
    assert job.model.lora.r == 4
    assert job.study == "renamed"


def test_bad_set_through_load_job_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "job.yaml", demo_data())
    msg = error_of(load_job, path, ["study.name=x"])
    assert msg == f"{path}: --set 'study.name=x': `study` is not a mapping, cannot set `study.name`"
    msg = error_of(load_job, path, ["design.volumez=[1]"])
    assert "unknown key `design.volumez` (did you mean `design.volumes`?)" in msg


def test_a_mapping_without_a_space_after_the_colon_gets_a_hint(tmp_path: Path) -> None:
    """YAML reads `{ocr:0.1}` as the key `ocr:0.1` with no value."""
    path = write(tmp_path / "job.yaml", demo_data())
    msg = error_of(load_job, path, ["design.max_share={colors:0.1}"])
    assert msg == (
        f"--set design.max_share={{colors:0.1}} (over {path}): `design.max_share.colors:0.1` has no value: without a space after the colon "
        "YAML reads `colors:0.1` as one key; write `{colors: 0.1}`"
    )
    search = ["design.kind=search", "design.seeds=[0]", "design.volumes=[250]"]
    job = load_job(path, [*search, "design.max_share={colors: 0.5}"])
    assert job.design.max_share == {"colors": 0.5}


@pytest.mark.parametrize("line", ["proportions: {a:0.5, b: 0.5}", "max_repeat: {a:2}",
                                  "min_share: {a:0.2}"])  # fmt: skip
def test_a_mixture_file_without_a_space_after_the_colon_gets_the_hint(
    tmp_path: Path, line: str
) -> None:
    """Review k: a mixture file said "must be a number, got None" (or "has an invalid value"
    for `int | dict` keys) where a job file gave the hint."""
    from ablate.mixture import load_mixture

    body = line if line.startswith("proportions") else f"proportions: {{a: 0.5, b: 0.5}}\n{line}"
    path = tmp_path / "m.yaml"
    path.write_text(f"{body}\nvolume: 100\n")
    msg = error_of(load_mixture, path)
    assert "has no value: without a space after the colon YAML reads `a:" in msg
    assert msg.startswith(f"{path}: `") and "write `{a: " in msg


# --------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_job_folder(tmp_path: Path, monkeypatch: Any) -> None:
    folder = tmp_path / "jobs" / "sub"
    folder.mkdir(parents=True)
    path = write(folder / "job.yaml", demo_data())
    monkeypatch.chdir(tmp_path)  # the working folder must not matter
    job = load_job(Path("jobs/sub/job.yaml"))
    assert job.source == str(path.resolve())
    assert job.pool_dir == folder.resolve() / "pool"
    assert job.bench_file == folder.resolve() / "world" / "bench.yaml"
    assert job.storage_url == f"sqlite:///{folder.resolve() / 'optuna.db'}"
    assert job.tracking_uri == f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def test_absolute_paths_and_server_urls_stay_as_they_are(tmp_path: Path) -> None:
    data = demo_data()
    data |= {
        "pool": "/data/pool",
        "storage": "sqlite:////abs/optuna.db",
        "tracking": "http://mlflow:5000",
    }
    job = load_job(write(tmp_path / "job.yaml", data))
    assert job.pool_dir == Path("/data/pool")
    assert job.storage_url == "sqlite:////abs/optuna.db"
    assert job.tracking_uri == "http://mlflow:5000"
    job = load_job(tmp_path / "job.yaml", ["storage=postgresql://u@127.0.0.1:5432/test"])
    assert job.storage_url == "postgresql://u@127.0.0.1:5432/test"


def test_plain_path_storage_is_a_journal_file_next_to_the_job(tmp_path: Path) -> None:
    job = load_job(write(tmp_path / "job.yaml", demo_data()), ["storage=runs/journal.log"])
    assert job.storage == "runs/journal.log"
    assert job.storage_url == str(tmp_path.resolve() / "runs" / "journal.log")
    assert "://" not in job.storage_url


# --------------------------------------------------------------------------- validate_job


def pool_job(tmp_path: Path, pool: dict[str, Path], overrides: tuple[str, ...] = ()) -> JobSpec:
    data = demo_data()
    data |= {
        "pool": str(pool["pool"]),
        "bench": str(pool["bench"]),
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": f"sqlite:///{tmp_path}/mlflow.db",
        "design": {"kind": "grid", "volumes": [40, 80], "balance": [0.4, 1.0], "seeds": [0]},
    }
    return load_job(write(tmp_path / "job.yaml", data), list(overrides))


def test_validate_job_accepts_what_the_pool_supplies(
    tmp_path: Path, small_pool: dict[str, Path]
) -> None:
    job = pool_job(tmp_path, small_pool)
    validate_job(job)
    assert job_task_types(job) == ["colors", "layout", "compare", "lists"]
    job = pool_job(tmp_path, small_pool, ("task_types=[]",))
    assert job_task_types(job) == ["colors", "compare", "layout", "lists"]  # the pool's, sorted
    validate_job(job)


def test_a_bench_no_objective_reads_is_said(tmp_path: Path, small_pool: dict[str, Path]) -> None:
    # a sim job copied from a training job keeps its `bench`: nothing scores it, and the user
    # is told so rather than left to think the scores are the bench's
    objective = "objective={kind: sim, landscape: less_is_more, metric: score}"
    job = pool_job(tmp_path, small_pool, (objective,))
    (line,) = validate_job(job)
    assert line == (
        f"warning: {job.source}: `bench` {job.bench_file} is not read: objective kind `sim` "
        "computes its own score, only kind `train` scores a bench"
    )
    job = pool_job(tmp_path, small_pool, (objective, "bench=nothere.yaml"))
    assert validate_job(job)[0].endswith("scores a bench; the file does not exist either")


def test_validate_job_task_type_the_pool_lacks(tmp_path: Path, small_pool: dict[str, Path]) -> None:
    job = pool_job(tmp_path, small_pool, ("task_types=[colors, painting]",))
    assert error_of(validate_job, job) == (
        f"{job.source}: `task_types` lists painting, which the pool's `skill` lacks; "
        "the pool has colors, compare, layout, lists"
    )


def test_a_sim_job_that_names_a_pool_is_checked_against_it(
    tmp_path: Path, small_pool: dict[str, Path]
) -> None:
    # review q: a sim job's `task_types: [.., list]` (the pool has `lists`) ran every trial, and
    # a `pool:` that does not exist was ignored
    sim = "objective={kind: sim, landscape: less_is_more, metric: score}"
    job = pool_job(tmp_path, small_pool, (sim, "task_types=[colors, list]", "bench=null"))
    assert error_of(validate_job, job) == (
        f"{job.source}: `task_types` lists list, which the pool's `skill` lacks (did you mean "
        "`lists`?); the pool has colors, compare, layout, lists"
    )
    job = pool_job(tmp_path, small_pool, (sim, "pool=nopool", "bench=null"))
    assert "`pool: nopool` (relative to the job file's folder) is " in error_of(validate_job, job)
    assert validate_job(pool_job(tmp_path, small_pool, (sim, "bench=null"))) == []


def test_a_sim_trials_mixture_is_over_the_jobs_task_types(
    tmp_path: Path, small_pool: dict[str, Path]
) -> None:
    # review q: `ablate trial SIM_JOB --mixture` with a misspelt type, or a `task_type` mixture
    # in a `skill` job, printed a meaningless score
    sim = "objective={kind: sim, landscape: less_is_more, metric: score}"
    job = pool_job(tmp_path, small_pool, (sim, "bench=null"))
    typo = tmp_path / "typo.yaml"
    typo.write_text("taxonomy: skill\nvolume: 100\nproportions: {colors: 0.5, layuot: 0.5}\n")
    assert error_of(trial_mixture, job, typo) == (
        f"{typo}: `proportions` names layuot, not a task type of {job.source} (did you mean "
        "`layout`?); its task types are colors, layout, compare, lists"
    )
    other = REPO / "mixtures" / "balanced.yaml"
    assert error_of(trial_mixture, job, other).startswith(
        f"{other}: the mixture's taxonomy is `task_type`, the job's ({job.source}) is `skill`"
    )
    typo.write_text("taxonomy: skill\nvolume: 100\nproportions: {colors: 0.5, layout: 0.5}\n")
    assert trial_mixture(job, typo)[0].proportions == {"colors": 0.5, "layout": 0.5}


def test_validate_job_taxonomy_the_pool_lacks(tmp_path: Path, small_pool: dict[str, Path]) -> None:
    job = pool_job(tmp_path, small_pool, ("taxonomy=genre",))
    assert error_of(validate_job, job) == (
        f"{job.source}: `taxonomy` 'genre' is not a label column of the pool "
        f"{small_pool['pool']}; available: task_type, domain, skill"
    )


def test_validate_job_volume_too_large_names_design_volumes_and_the_most_it_can_be(
    tmp_path: Path, small_pool: dict[str, Path]
) -> None:
    job = pool_job(tmp_path, small_pool, ("design.volumes=[40, 250, 2000]",))
    msg = error_of(validate_job, job)
    # At balance 0.4 the dominant `colors` share is 0.86: 250 rows need 216 colors (215.2 exact:
    # the larger type gets its extra row first), the pool has 87.
    assert msg == (
        f"{job.source}: `design.volumes` 250, 2000 cannot be drawn from the pool "
        f"{small_pool['pool']}: design point v250-b0.40-s0 needs 216 rows of `colors`, the pool's "
        "`skill` has 87. Lower `design.volumes` to at most 100 (the largest volume every "
        "`design.balance` level can draw), or import a larger pool"
    )
    assert "max_repeat" not in msg  # a job file has no such key
    validate_job(pool_job(tmp_path, small_pool, ("design.volumes=[100]",)))
    # far more rows than the pool holds: refused before apportioning a billion rows
    huge = error_of(validate_job, pool_job(tmp_path, small_pool, ("design.volumes=[1e9]",)))
    assert "`design.volumes` 1000000000 cannot be drawn" in huge and "at most 100" in huge
    # rows held out of every trial leave the pool before the draw: 100 no longer fits
    held = f"bench={{file: {small_pool['bench']}, heldout_of_pool: 0.1}}"
    msg = error_of(validate_job, pool_job(tmp_path, small_pool, ("design.volumes=[100]", held)))
    assert "the pool's `skill` has 78 (counts less the " in msg  # 87 colors, 9 held out
    assert "rows `bench.heldout_of_pool` holds out). Lower `design.volumes` to at most 90" in msg


def test_a_search_is_checked_at_the_largest_share_it_can_propose(
    tmp_path: Path, small_pool: dict[str, Path]
) -> None:
    """A search proposes up to a whole type (or its cap) at its largest volume: refused up
    front where the pool cannot supply it (before: those trials failed and used up n_trials)."""
    search = "design={kind: search, n_trials: 6, volumes: [80]}"
    fits = search.replace("80", "50")
    validate_job(pool_job(tmp_path, small_pool, (fits,)))  # lists: 50 rows, each type fits
    msg = error_of(validate_job, pool_job(tmp_path, small_pool, (search,)))
    assert msg == (
        f"{tmp_path / 'job.yaml'}: at 80 rows the search can propose shares the pool's `skill` "
        "cannot supply: `compare` 1 (80 rows; it has 78), `lists` 1 (80 rows; it has 50); cap "
        "them with `design.max_share: {compare: 0.975, lists: 0.625}`, or lower the largest of "
        "`design.volumes` to at most 50"
    )
    capped = search.replace("80]", "80], max_share: {compare: 0.975, lists: 0.625}")
    validate_job(pool_job(tmp_path, small_pool, (capped,)))  # the cap it suggests fits
    floors = search.replace("80]", "80], min_share: 0.15")  # 1 - 3 x 0.15 = 0.55 of 80: 44
    validate_job(pool_job(tmp_path, small_pool, (floors,)))
    ranged = "design={kind: search, n_trials: 6, volumes: [20, 200], search_volume: true}"
    assert "at 200 rows" in error_of(validate_job, pool_job(tmp_path, small_pool, (ranged,)))


def test_validate_job_missing_pool_and_bench(tmp_path: Path, small_pool: dict[str, Path]) -> None:
    job = pool_job(tmp_path, small_pool, (f"pool={tmp_path / 'nopool'}",))
    msg = error_of(validate_job, job)
    assert msg.startswith(  # the job file and its key first: the path is relative to it
        f"{job.source}: `pool: {tmp_path / 'nopool'}` (relative to the job file's folder) is "
        f"{tmp_path / 'nopool'}: not a pool folder (does not exist); "
    )
    assert "ablate data import" in msg
    job = pool_job(tmp_path, small_pool, ("bench=missing.yaml",))
    assert error_of(validate_job, job) == (
        f"{job.source}: `bench` file {tmp_path.resolve() / 'missing.yaml'} does not exist"
    )


@pytest.mark.parametrize(
    ("storage", "tracking", "message"),
    [
        ("", "sqlite:///m.db", "`storage` is empty; give sqlite:///FILE.db"),
        ("sqlite:/x.db", "sqlite:///m.db", "`storage` sqlite:/x.db is not a SQLite URL"),
        ("sqlite:///a.db", "ftp://x", "`tracking` ftp://x is not an MLflow tracking URI"),
        ("sqlite:///a.db", "sqlite:/m.db", "`tracking` sqlite:/m.db is not a SQLite URL"),
        (  # (before: NoSuchModuleError and "check that the database server runs")
            "postgresq://u:pw@h/db",
            "sqlite:///m.db",
            "`storage` postgresq://u:***@h/db: `postgresq://` is no database ablate knows "
            "(did you mean `postgresql`?); give sqlite:///FILE.db (relative to the job file), "
            "postgresql://..., or a journal file path (known schemes: sqlite, postgresql,",
        ),
        ("postgres://h/db", "sqlite:///m.db", "(did you mean `postgresql`?)"),
    ],
)
def test_store_urls_that_name_no_store_are_refused_when_read(
    tmp_path: Path, storage: str, tracking: str, message: str
) -> None:
    """(before: an IsADirectoryError, a journal file named `sqlite:/x.db`, MLflow's exception
    after Ray had started)"""
    path = write(tmp_path / "j.yaml", {**demo_data(), "storage": storage, "tracking": tracking})
    assert message in error_of(load_job, path)
    ok = {**demo_data(), "tracking": "postgresql+psycopg2://u:pw@h/db", "storage": "j.log"}
    load_job(write(tmp_path / "ok.yaml", ok))  # a driver in the scheme, a journal file: fine
    ok["storage"] = "mysql+pymysql://u:pw@h/db"
    load_job(write(tmp_path / "ok.yaml", ok))


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("design.seeds", [0, -1], "`design.seeds` has the seed -1"),
        ("design.seeds", [2**32], "`design.seeds` has the seed 4294967296"),
        ("seed", -3, "`seed` has the seed -3"),
        ("objective.landscape_seed", -1, "`objective.landscape_seed` has the seed -1"),
    ],
)
def test_a_seed_numpy_cannot_take_is_refused_when_the_job_is_read(
    tmp_path: Path, key: str, value: Any, named: str
) -> None:
    """(transformers' set_seed fails on it inside every trial of the sweep otherwise)"""
    data = demo_data()
    apply_override(data, f"{key}={value}")
    msg = error_of(read_job, write(tmp_path / "job.yaml", data))
    assert named in msg and "0 to 4294967295" in msg and "job.yaml" in msg


def test_the_largest_seed_numpy_takes_is_accepted(tmp_path: Path) -> None:
    data = demo_data()
    apply_override(data, f"design.seeds=[0, {2**32 - 1}]")
    assert read_job(write(tmp_path / "job.yaml", data)).design.seeds == (0, 2**32 - 1)


@pytest.mark.parametrize(
    ("seeds", "named"),
    [
        ("", "comma-separated whole numbers"),
        ("0,x", "comma-separated whole numbers"),
        ("-1", "`--seeds` has the seed -1"),
        ("1,2,1", "lists a seed twice"),
    ],
)
def test_propose_seeds_are_checked_before_the_study_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seeds: str, named: str
) -> None:
    from ablate.cli.main import main

    data = demo_data()
    data["storage"] = f"sqlite:///{tmp_path / 'never-made.db'}"
    path = write(tmp_path / "job.yaml", data)
    assert main(["propose", str(path), "--seeds", seeds]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "never-made.db").exists()


def test_a_bad_set_value_names_the_set_option_not_the_job_file(tmp_path: Path) -> None:
    """Review q#9: `--set 'design.volumes=[250,'` was taken as the string '[250,' and blamed
    on the job file ("job.yaml: `design.volumes` must be a list"); `--set study=` read as null
    ("job.yaml: `study` must be a string, got None"). The file was fine."""
    path = write(tmp_path / "job.yaml", "study: s\nobjective: {kind: sim}\ntask_types: [a, b]\n")
    msg = error_of(read_job, path, ["design.volumes=[250,"])
    assert msg.startswith("--set design.volumes=[250,: the value is not valid YAML (")
    assert msg.endswith("); fix it or quote it")
    assert error_of(read_job, path, ["study="]) == (
        "--set study=: empty value; give one (or null to clear the key)"
    )
    assert error_of(read_job, path, ["design.volumes=abc"]).startswith(
        f"--set design.volumes=abc (over {path}): `design.volumes` must be a list"
    )
    assert error_of(read_job, path, ["design.volumes=[-5]"]).startswith(
        f"--set design.volumes=[-5] (over {path}): `design.volumes[0]` must be a positive"
    )
    assert read_job(path, ["study=@x"]).study == "@x"  # not YAML, but plainly a string
    # the --set quoted back never shows a password (a misspelt scheme's refusal quoted it)
    msg = error_of(read_job, path, ["storage=postgresq://u:Zx/9kLeak@h:5432/db"])
    assert msg.startswith(f"--set storage=postgresq://u:***@h:5432/db (over {path}): ")
    assert "9kLeak" not in msg
    path.write_text("study: s\nobjective: {kind: sim}\ntask_types: [a, b]\ndesign: {seeds: x}\n")
    assert error_of(read_job, path, ["study=t"]).startswith(f"{path}: `design.seeds`")
