"""A study remembers what its trials were trained with: the settings fingerprint, the check a
rerun passes, the opt-in that records a change as a factor, legacy studies. No Ray: the check
happens before any work, and trials are told here the values a sweep would."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from objectives_for_tests import landscape
from optuna.trial import TrialState

from ablate.analysis import load
from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.plan import design_mixtures
from ablate.pool import ImportRequest, import_pool, open_pool
from ablate.study import (
    STUDY_SETTINGS_ID,
    SettingsLevel,
    check_settings,
    enqueue_design,
    job_settings,
    open_study,
    settings_id,
)
from ablate.study.optuna_fast import pop_waiting, waiting_ids
from ablate.study.settings import STUDY_SETTINGS, canonical, differences
from ablate.sweep import study_status
from ablate.sweep.driver import enqueue, trials_to_ask

TYPES = ["caption", "count", "compare"]
GRID = {"volumes": [100, 400], "balance": [0.5, 1.0], "seeds": [0]}


def finish_waiting(study: Any, level: SettingsLevel | None = None) -> int:
    """Tell every WAITING trial (of `level`) the value a sweep of the python objective would."""
    queue = waiting_ids(study, level.owns if level else None)
    n = 0
    while (trial := pop_waiting(study, queue)) is not None:
        a = trial.user_attrs
        study.tell(trial, landscape(a["proportions"], a["volume"], a["seed"]))
        n += 1
    return n


def sweep_without_ray(job: JobSpec, allow: bool = False) -> tuple[SettingsLevel, str | None]:
    """`run_sweep`'s steps up to Ray (check, enqueue), then every trial of its level finished."""
    study = open_study(job)
    level, note = check_settings(study, job, job_settings(job, TYPES), allow)
    enqueue(job, study, design_mixtures(job, TYPES), TYPES, level)
    finish_waiting(study, level)
    return level, note


def complete(job: JobSpec) -> list[Any]:
    return open_study(job, create=False).get_trials(states=(TrialState.COMPLETE,))


@pytest.fixture
def make_job(make_job: Callable[..., JobSpec]) -> Callable[..., JobSpec]:
    """Jobs whose objective kind trains (none runs here): only then are `train.*` and `model.*`
    settings (`python` and `sim` never read them)."""

    def make(**overrides: Any) -> JobSpec:
        return make_job(
            **{**overrides, "objective": {"kind": "train", **overrides.get("objective", {})}}
        )

    return make


@pytest.fixture
def base_job(make_job: Callable[..., JobSpec]) -> JobSpec:
    return make_job(design=GRID, train={"lr": 5e-3})


def test_a_rerun_with_a_changed_setting_is_refused_naming_each_key_and_both_values(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    sweep_without_ray(base_job)
    assert len(complete(base_job)) == 4
    changed = make_job(
        design={**GRID, "seeds": [0, 1, 2]}, train={"lr": 1e-3}, model={"lora": {"r": 8}}
    )
    study = open_study(changed)
    with pytest.raises(UserError) as err:
        check_settings(study, changed, job_settings(changed, TYPES))
    text = str(err.value)
    assert "train.lr: study has 0.005, this job has 0.001" in text
    assert "model.lora.r: study has 16, this job has 8" in text
    assert "design" not in text.split("the analysis")[0]  # more seeds is not a difference
    assert "--set study=NAME" in text and "--allow-changed-settings" in text
    assert "\n" not in text
    assert len(study.get_trials()) == 4  # nothing enqueued


def test_the_design_storage_and_resources_may_change_and_the_study_grows(
    base_job: JobSpec, make_job: Callable[..., JobSpec], tmp_path: Path
) -> None:
    first, _ = sweep_without_ray(base_job)
    grown = make_job(
        design={"volumes": [100, 400, 1600], "balance": [0.5, 1.0], "seeds": [0, 1]},
        train={"lr": 5e-3, "threads": 2, "eval_every": 5},  # speed and bookkeeping only
        resources={"max_in_flight": 7, "cpus_per_trial": 2},
        tracking=f"sqlite:///{tmp_path}/elsewhere.db",
        objective={"duration_s": 3.0},
    )
    assert settings_id(job_settings(grown, TYPES)) == first.id
    level, note = sweep_without_ray(grown)
    assert level == first and note is None
    trials = complete(base_job)
    assert len(trials) == 12  # 3 volumes x 2 balance x 2 seeds, the first 4 kept
    assert {t.user_attrs["settings_id"] for t in trials} == {first.id}
    assert not any("settings_changes" in t.user_attrs for t in trials)


def test_a_search_may_ask_more_trials(make_job: Callable[..., JobSpec]) -> None:
    search = {"kind": "search", "n_trials": 3, "volumes": [100], "sampler": "random"}
    job = make_job(design=search)
    level, _ = sweep_without_ray(job)
    more = make_job(design={**search, "n_trials": 8})
    study = open_study(more)
    again, note = check_settings(study, more, job_settings(more, TYPES))
    assert again == level and note is None
    assert trials_to_ask(more, study, again) == 8 - len(study.get_trials())


def test_the_opt_in_records_the_change_as_a_factor(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    first, _ = sweep_without_ray(base_job)
    changed = make_job(design=GRID, train={"lr": 1e-3})
    level, note = sweep_without_ray(changed, allow=True)
    assert level.id != first.id and level.base == first.id
    assert level.changes == {"train.lr": 0.001}
    assert note is not None and "train.lr: study has 0.005, they have 0.001" in note

    trials = complete(base_job)
    assert len(trials) == 8  # every design point again, at the new learning rate
    new = [t for t in trials if t.user_attrs["settings_id"] == level.id]
    assert len(new) == 4 and all(t.user_attrs["settings_changes"] == level.changes for t in new)
    study = open_study(base_job, create=False)
    assert study.user_attrs[STUDY_SETTINGS_ID] == first.id
    assert set(study.user_attrs[STUDY_SETTINGS]) == {first.id, level.id}

    # the analysis's table keeps them apart: the same mixture and seed, two settings
    df = load(base_job)
    assert set(df["settings"]) == {first.id, level.id}
    assert (df.groupby(["mixture", "seed", "settings"]).size() == 1).all()

    # a rerun of either settings is accepted without the flag and adds nothing
    for job, want in ((changed, level), (base_job, first)):
        again, note = check_settings(study, job, job_settings(job, TYPES))
        assert again.id == want.id and note is None
        assert enqueue(job, study, design_mixtures(job, TYPES), TYPES, again) == 0
    # a third setting is still refused, named against the study's own
    third = make_job(design=GRID, train={"lr": 2e-3})
    with pytest.raises(UserError, match=r"train\.lr: study has 0\.005, this job has 0\.002"):
        check_settings(study, third, job_settings(third, TYPES))


def test_a_study_from_before_settings_were_recorded_is_adopted(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    study = open_study(base_job)
    enqueue_design(study, design_mixtures(base_job, TYPES))  # as older versions did: no level
    finish_waiting(study)
    assert STUDY_SETTINGS_ID not in study.user_attrs

    level, note = check_settings(study, base_job, job_settings(base_job, TYPES))
    assert note is not None and "4 trial(s) from before ablate recorded" in note
    assert level.id in note and study.user_attrs[STUDY_SETTINGS_ID] == level.id
    recorded = json.loads(study.user_attrs[STUDY_SETTINGS][level.id])
    assert canonical(recorded) == canonical(job_settings(base_job, TYPES))
    assert recorded["train.lr"] == 0.005
    # its trials (no settings_id of their own) are the study's: resumed, not repeated
    assert enqueue(base_job, study, design_mixtures(base_job, TYPES), TYPES, level) == 0
    assert set(load(base_job)["settings"]) == {level.id}

    changed = make_job(design=GRID, train={"lr": 1e-3})
    with pytest.raises(UserError, match=r"train\.lr: study has 0\.005, this job has 0\.001"):
        check_settings(study, changed, job_settings(changed, TYPES))


def test_an_empty_study_takes_the_settings_of_its_first_run(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    study = open_study(base_job)
    check_settings(study, base_job, job_settings(base_job, TYPES))
    changed = make_job(design=GRID, train={"lr": 1e-3})
    level, note = check_settings(study, changed, job_settings(changed, TYPES))
    assert note is None and level.changes == {}
    assert study.user_attrs[STUDY_SETTINGS_ID] == level.id


def test_a_key_a_recorded_study_lacks_counts_as_its_default(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    """A setting fingerprinted by a later version of ablate does not refuse older studies."""
    level, _ = sweep_without_ray(base_job)
    study = open_study(base_job)
    old = json.loads(study.user_attrs[STUDY_SETTINGS][level.id])
    del old["train.warmup_ratio"]
    study.set_user_attr(STUDY_SETTINGS, {level.id: canonical(old)})
    again, _ = check_settings(study, base_job, job_settings(base_job, TYPES))
    assert again.id == level.id
    warm = make_job(design=GRID, train={"lr": 5e-3, "warmup_ratio": 0.1})
    with pytest.raises(UserError, match=r"train\.warmup_ratio: study has 0\.0, this job has 0\.1"):
        check_settings(study, warm, job_settings(warm, TYPES))


def _pool(folder: Path) -> Path:
    records = [
        {
            "id": f"r{i}",
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": f"x{i}"}],
        }
        for i in range(6)
    ]
    folder.mkdir(parents=True)
    (folder / "d.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    import_pool(ImportRequest(source=folder / "d.jsonl", out=folder / "pool"))
    return folder / "pool"


def test_the_pool_is_fingerprinted_by_content_not_by_path(
    make_job: Callable[..., JobSpec], tmp_path: Path
) -> None:
    pool = _pool(tmp_path / "data")
    absolute = make_job(pool=str(pool))
    (tmp_path / "jobs").mkdir()
    relative = dataclasses.replace(
        make_job(pool="../data/pool"), source=str(tmp_path / "jobs" / "job.yaml")
    )
    shutil.copytree(pool, tmp_path / "copy")
    copied = make_job(pool=str(tmp_path / "copy"))
    ids = {settings_id(job_settings(j, TYPES)) for j in (absolute, relative, copied)}
    assert len(ids) == 1
    fingerprint = job_settings(absolute, TYPES)["pool.fingerprint"]
    assert fingerprint == open_pool(pool).manifest.fingerprint[:16]

    other = _pool(tmp_path / "other")
    (other / "manifest.json").write_text(
        (other / "manifest.json").read_text().replace('"fingerprint": "', '"fingerprint": "f')
    )
    diff_job = make_job(pool=str(other))
    study = open_study(absolute)
    level, _ = check_settings(study, absolute, job_settings(absolute, TYPES))
    enqueue(absolute, study, design_mixtures(absolute, TYPES), TYPES, level)
    finish_waiting(study, level)  # with no result, a change would be taken (no refusal)
    with pytest.raises(UserError, match=r"pool\.fingerprint: study has \w{16}, this job has f"):
        check_settings(study, diff_job, job_settings(diff_job, TYPES))


def test_status_shows_the_settings_and_whether_the_job_matches(
    base_job: JobSpec, make_job: Callable[..., JobSpec]
) -> None:
    first, _ = sweep_without_ray(base_job)
    assert f"settings {first.id} (4 trials); this job: same" in study_status(base_job)
    changed = make_job(design=GRID, train={"lr": 1e-3})
    assert "this job: differs in train.lr" in study_status(changed)
    level, _ = sweep_without_ray(changed, allow=True)
    text = study_status(changed)
    assert f"{level.id} train.lr=0.001 (4 trials)" in text and f"same as {level.id}" in text
    # a job's `within` is held at every point: status says so (the shares it lists are outer)
    nested = dataclasses.replace(changed, within={"base": {"taxonomy": "task_type"}})
    assert "  within base: task_type natural (at every design point)" in study_status(nested)


def test_objectives_that_do_not_train_have_no_training_settings(
    make_job: Callable[..., JobSpec],
) -> None:
    """A `python` (or `sim`) trial never reads `model`, `lora`, `train` or `bench`: a change
    there is no change of its study's settings, and a study recorded with those keys (before
    they were left out) resumes."""
    python = {"kind": "python"}
    job = make_job(design=GRID, objective=python, train={"lr": 5e-3})
    keys = job_settings(job, TYPES)
    assert not [k for k in keys if k.startswith(("model.", "train.", "bench", "seed"))]
    level, _ = sweep_without_ray(job)
    changed = make_job(design=GRID, objective=python, train={"lr": 1e-3}, model={"lora": {"r": 8}})
    study = open_study(changed)
    again, note = check_settings(study, changed, job_settings(changed, TYPES))
    assert (again.id, note) == (level.id, None)

    # as recorded before: the python job's settings with the training keys of a train job
    old = {**job_settings(make_job(design=GRID, train={"lr": 5e-3}), TYPES), **keys}
    assert old["train.lr"] == 0.005 and "bench" in old
    old_id = settings_id(old)
    legacy = dataclasses.replace(changed, study="legacy")
    study = open_study(legacy)
    study.set_user_attr(STUDY_SETTINGS, {old_id: canonical(old)})
    study.set_user_attr(STUDY_SETTINGS_ID, old_id)
    enqueue(legacy, study, design_mixtures(legacy, TYPES), TYPES, SettingsLevel(old_id, old_id))
    assert finish_waiting(study) == 4
    resumed, note = check_settings(study, legacy, job_settings(legacy, TYPES))
    assert (resumed.id, resumed.changes, note) == (old_id, {}, None)
    assert enqueue(legacy, study, design_mixtures(legacy, TYPES), TYPES, resumed) == 0


def test_a_model_folder_moved_with_its_project_is_the_same_model(
    make_job: Callable[..., JobSpec], tmp_path: Path
) -> None:
    """A project rsynced to a cluster: its model folder's resolved path changes, its files do
    not, and its old path is gone there. Another checkpoint (same config, weights of the same
    size) whose old folder still exists stays a change; a study recorded before
    `model.files` resumes."""
    home = tmp_path / "laptop/models/tiny"
    home.mkdir(parents=True)
    (home / "config.json").write_text('{"hidden_size": 8}')
    (home / "model.safetensors").write_bytes(b"x" * 100)
    study_job = make_job(design=GRID, model={"path": str(home)})
    level, _ = sweep_without_ray(study_job)
    study = open_study(study_job)
    shutil.copytree(home, tmp_path / "checkpoint-2")
    other = make_job(design=GRID, model={"path": str(tmp_path / "checkpoint-2")})
    with pytest.raises(UserError, match=r"model\.path: study has .*laptop/models/tiny"):
        check_settings(study, other, job_settings(other, TYPES))
    (home / "model.safetensors").write_bytes(b"y" * 101)  # retrained in place: other weights
    changed = make_job(design=GRID, model={"path": str(home)})
    with pytest.raises(UserError, match=r"model\.files: study has \w{12}, this job has \w{12}"):
        check_settings(study, changed, job_settings(changed, TYPES))
    (home / "model.safetensors").write_bytes(b"x" * 100)
    shutil.move(tmp_path / "laptop", tmp_path / "cluster")
    moved = make_job(design=GRID, model={"path": str(tmp_path / "cluster/models/tiny")})
    assert check_settings(study, moved, job_settings(moved, TYPES))[0].id == level.id
    old = json.loads(study.user_attrs[STUDY_SETTINGS][level.id])
    del old["model.files"]  # a study from before: compared by path, as it was recorded
    study.set_user_attr(STUDY_SETTINGS, {level.id: canonical(old)})
    shutil.move(tmp_path / "cluster", tmp_path / "laptop")
    assert check_settings(study, study_job, job_settings(study_job, TYPES))[0].id == level.id


def test_a_search_refuses_task_types_in_another_order(
    make_job: Callable[..., JobSpec],
) -> None:
    """A search's coordinates u0, u1, ... follow the order of its task types: reordered, the
    sampler would read every earlier trial as another mixture. A grid may reorder (its points
    carry their shares), and a study recorded before the order was fingerprinted resumes."""
    search = {"kind": "search", "volumes": [100], "seeds": [0], "n_trials": 4}
    first = make_job(design=search)
    level, _ = sweep_without_ray(first)
    study = open_study(first)
    assert complete(first)
    reordered = make_job(design=search, task_types=TYPES[::-1])
    with pytest.raises(UserError) as err:
        check_settings(study, reordered, job_settings(reordered, TYPES[::-1]))
    assert 'search.task_order: study has ["caption", "count", "compare"], this job has ' in str(
        err.value
    )
    old = json.loads(study.user_attrs[STUDY_SETTINGS][level.id])
    del old["search.task_order"]
    study.set_user_attr(STUDY_SETTINGS, {level.id: canonical(old)})
    assert check_settings(study, first, job_settings(first, TYPES))[0].id == level.id
    grid = make_job(design=GRID)
    assert "search.task_order" not in job_settings(grid, TYPES)


def test_a_pool_relabelled_by_other_rules_is_another_pool(
    make_job: Callable[..., JobSpec], tmp_path: Path
) -> None:
    """Same dialogues, other label rules: the fingerprint (over the dialogues) is the same, the
    selections differ, so the settings differ in `pool.labels` and the study refuses the rerun.
    A study recorded before `pool.labels` existed lacks the key and resumes."""
    pool = _pool(tmp_path / "data")
    records = tmp_path / "data" / "d.jsonl"
    rule = (("task_type", "turns:1=short,2+=long"),)  # every record: 1 turn pair -> all `short`
    import_pool(ImportRequest(source=records, out=tmp_path / "relabelled", labels=rule))
    relabelled = open_pool(tmp_path / "relabelled")
    assert relabelled.manifest.fingerprint == open_pool(pool).manifest.fingerprint
    job = make_job(pool=str(pool), task_types=[])
    other = make_job(pool=str(tmp_path / "relabelled"), task_types=[])
    mine, theirs = job_settings(job, ["text_only"]), job_settings(other, ["text_only"])
    assert mine["pool.fingerprint"] == theirs["pool.fingerprint"]
    assert mine["pool.labels"] != theirs["pool.labels"]
    study = open_study(job)
    level, _ = check_settings(study, job, mine)
    enqueue(job, study, design_mixtures(job, ["text_only"]), ["text_only"], level)
    finish_waiting(study, level)
    with pytest.raises(UserError, match=r"pool\.labels: study has \w{16}, this job has \w{16}"):
        check_settings(study, other, theirs)
    old = {k: v for k, v in mine.items() if k != "pool.labels"}  # recorded before the key
    assert "pool.labels" not in differences(old, mine)
    # `within` recorded, then left out of the job: named, not only as the labels' hash
    nested = {**mine, "within": {"base": {"taxonomy": "task_type"}}}
    assert differences(nested, mine)["within"] == ({"base": {"taxonomy": "task_type"}}, "(none)")


def test_a_study_with_no_finished_trial_takes_changed_settings(
    make_job: Callable[..., JobSpec],
) -> None:
    """Every trial failed (a wrong learning rate, a model path that did not load): no result is
    of the old settings, so a fixed job is taken under the study's own settings id and its
    failed trials are retried with it, where it was refused as a change."""
    job = make_job(design=GRID)
    study = open_study(job)
    level, _ = check_settings(study, job, job_settings(job, TYPES))
    enqueue(job, study, design_mixtures(job, TYPES), TYPES, level)
    queue = waiting_ids(study)
    while (trial := pop_waiting(study, queue)) is not None:
        study.tell(trial, state=TrialState.FAIL)
    fixed = make_job(design=GRID, train={"lr": 1.0e-4})
    again, note = check_settings(study, fixed, job_settings(fixed, TYPES))
    assert again.id == level.id and again.base == level.id and not again.changes
    assert note is not None and "train.lr: study has 0.0002, this job has 0.0001" in note
    assert "none of its 4 trial(s) finished, so it takes this job's settings" in note
    assert check_settings(study, fixed, job_settings(fixed, TYPES)) == (again, None)
    enqueue(fixed, study, design_mixtures(fixed, TYPES), TYPES, again)
    assert len(waiting_ids(study, again.owns)) == 4  # the failed points, requeued
