"""One parent run per sweep, one child run per Optuna trial.

Tags: the parent carries `ablate.study=<study>`, `ablate.role=sweep` and `ablate.study_uid` (the
study's own id: found again on resume, never another storage's study of the same name),
and for a bench scored by an LLM judge `ablate.judge` and `ablate.judge.<key>` (model, host,
url, rubric version, settings: `tag_sweep_judge`); a child carries `mlflow.parentRunId`,
`ablate.study`, `ablate.role=trial`, `optuna.trial_number` and, once finished,
`ablate.selection_hash` (and `ablate.error` when it failed; `ablate.judge` when judged, its
params then including `judge.<key>`). Everything goes through one cached `MlflowClient` per
tracking URI and `log_batch`, so logging a trial costs a handful of database writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ablate.bench.judge_http import judge_label
from ablate.config import JobSpec, model_job, redact, sqlite_path, to_dict
from ablate.design import design_keys_read
from ablate.mixture import Mixture, normalized_entropy
from ablate.objectives import objective_trains
from ablate.result import TrialResult
from ablate.tracking.client import (
    MAX_TAG_CHARS,
    experiment_id,
    flatten,
    is_number,
    log_params,
    metric_key,
    mlflow_client,
    quote,
)
from ablate.tracking.parents import STUDY_UID_TAG, pick_parent


def start_sweep(job: JobSpec, uid: str | None = None) -> str:
    """The parent run of the job's study: found again by tags (resume) or created. Returns its id.

    `uid`: the study's own id (`ablate.study.study_uid`), tagged on the parent, so that a study
    of the same name in another Optuna storage (a shared tracking server, an Optuna file started
    afresh) gets a parent of its own, named `sweep-<study>-<uid>`, instead of sharing one. Call
    it in the driver before any worker starts: it creates the SQLite tracking database (and runs
    its migrations) exactly once.
    """
    import yaml

    client = mlflow_client(job.tracking_uri)
    exp_id = experiment_id(job)
    parents = _parents(client, exp_id, job)
    found, adopt = pick_parent(parents, redact(job.storage_url), uid)
    if found is not None:
        if adopt and uid is not None:
            client.set_tag(found, STUDY_UID_TAG, uid)
        if client.get_run(found).info.status != "RUNNING":
            client.update_run(found, status="RUNNING")
        _log_job(client, found, job)  # params keep the first run's job; each run's is here
        return found
    tags = {
        "ablate.study": job.study,
        "ablate.role": "sweep",
        "optuna.storage": redact(job.storage_url),
    }
    run = client.create_run(
        exp_id,
        run_name=f"sweep-{job.study}" + (f"-{uid}" if parents and uid else ""),
        tags={**tags, **({STUDY_UID_TAG: uid} if uid else {})},
    )
    run_id = str(run.info.run_id)
    log_params(client, run_id, _job_params(job))
    client.log_text(run_id, yaml.safe_dump(job_record(job), sort_keys=False), "job.yaml")
    _log_job(client, run_id, job)
    return run_id


def job_record(job: JobSpec) -> dict[str, Any]:
    """The job as the parent run records it (`job.yaml`, params): `storage` and `tracking`
    without their passwords, as every message shows them; the rest as the file says."""
    record: dict[str, Any] = to_dict(job)
    record.update(storage=redact(job.storage), tracking=redact(job.tracking))
    return record


def _job_params(job: JobSpec) -> dict[str, str]:
    """The job as the parent's params, less what its trials never read: a sim or python
    objective trains no model (`model`, `train`, `bench`, ...), a design kind reads only its
    own `design.*` keys (a grid's parent showed `design.n_trials=20` on 12 trials), and unset
    keys (None). `job.yaml` keeps all of it."""
    params = {k: v for k, v in flatten(job_record(job)).items() if v != "None"}
    read = design_keys_read(job)
    if read is not None:
        params = {k: v for k, v in params.items()
                  if not k.startswith("design.") or k.split(".")[1] in read}  # fmt: skip
    if objective_trains(job):
        return params
    unused = ("model.", "train.", "bench.", "bench")
    return {k: v for k, v in params.items() if not k.startswith(unused)}


def _log_job(client: Any, run_id: str, job: JobSpec) -> None:
    """This run's job as `jobs/<UTC start>.yaml`, named by the tag `ablate.last_job`: MLflow
    params cannot change, so after a resume with more trials or volumes the parent's params
    still show the first run's job (also kept as `job.yaml`)."""
    import yaml

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = f"jobs/{stamp}.yaml"
    client.log_text(run_id, yaml.safe_dump(job_record(job), sort_keys=False), path)
    client.set_tag(run_id, "ablate.last_job", path)


def _parents(client: Any, exp_id: str, job: JobSpec) -> list[tuple[str, str | None, str | None]]:
    """The runs tagged as the study's sweep: (run id, study id tag, storage tag), oldest first."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`ablate.study` = '{quote(job.study)}' and tags.`ablate.role` = 'sweep'",
        max_results=100,
        order_by=["attributes.start_time ASC"],
    )
    return [
        (str(r.info.run_id), r.data.tags.get(STUDY_UID_TAG), r.data.tags.get("optuna.storage"))
        for r in runs
    ]


def sweep_links(job: JobSpec, parent_run_id: str) -> str:
    """Where to watch the sweep in the MLflow UI: a tracking server's link, or for a local store
    the `mlflow ui` command and the link it will serve."""
    uri = job.tracking_uri.rstrip("/")
    local = not uri.startswith(("http://", "https://"))
    # the query opens the training-runs view: MLflow 3.17's UI opens its GenAI view otherwise,
    # whatever the experiment's `mlflow.experimentKind` tag says
    base = "http://127.0.0.1:5000" if local else redact(uri)
    link = f"{base}/#/experiments/{experiment_id(job)}/runs/{parent_run_id}"
    link += "?workflowType=machine_learning"
    if local:
        return f"MLflow: `mlflow ui --backend-store-uri {uri}`, then {link} (the sweep's run)"
    return f"MLflow: {link} (the sweep; its trials are child runs)"


def trial_params(job: JobSpec, mixture: Mixture, settings: str = "") -> dict[str, str]:
    """The parameters a child run records (strings, as MLflow stores them); `settings`: the id
    of the settings the trial was trained with (`ablate.study.settings`), when known."""
    job = model_job(job, mixture.model)  # a trial of a `models:` entry: that model's settings
    props = mixture.proportions if isinstance(mixture.proportions, dict) else {}
    params = {f"p/{t}": f"{float(p):.6g}" for t, p in props.items()}
    if mixture.model:
        params["model"] = mixture.model
    params.update(
        {
            "volume": f"{mixture.volume:g}",
            "balance": f"{normalized_entropy(props):.6g}",
            "seed": str(mixture.seed),
            "mixture": mixture.name,
            "taxonomy": mixture.taxonomy,
            "objective": job.objective.kind,
        }
    )
    if mixture.model and not objective_trains(job):  # which model a sim trial scales by
        params["model.path"] = job.model.path
    if objective_trains(job):  # a sim or python trial never reads them: no model was trained
        params.update(
            {
                "model.path": job.model.path,
                "lora.r": str(job.model.lora.r),
                "lora.alpha": str(job.model.lora.alpha),
                "train.lr": f"{job.train.lr:g}",
                "train.batch_size": str(job.train.batch_size),
                "train.epochs": f"{job.train.epochs:g}",
            }
        )
    if settings:
        params["settings"] = settings
    return params


def start_trial(
    job: JobSpec,
    parent_run_id: str,
    trial_number: int,
    mixture: Mixture,
    params: bool = True,
    settings: str = "",
) -> str:
    """A RUNNING child run for a dispatched trial (so the MLflow UI shows what is in flight).

    `params=False`: the caller logs the params itself, in the same batch as the metrics.
    """
    client = mlflow_client(job.tracking_uri)
    run = client.create_run(
        experiment_id(job),
        run_name=run_name(trial_number, mixture),
        tags=child_tags(job, parent_run_id, trial_number),
    )
    run_id = str(run.info.run_id)
    if params:
        log_params(client, run_id, trial_params(job, mixture, settings))
    return run_id


def trial_batch(
    job: JobSpec,
    parent_run_id: str,
    trial_number: int,
    mixture: Mixture,
    result: TrialResult | None,
    state: str,
    error: str | None,
    with_params: bool,
    settings: str = "",
) -> tuple[list[Any], list[Any], list[Any]]:
    """(metrics, params, tags) of a finished trial's child run, as `log_batch` takes them."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metrics: list[Any] = []
    tags: list[Any] = []
    params = (
        [Param(k, v) for k, v in trial_params(job, mixture, settings).items()]
        if with_params
        else []
    )
    judge = judge_params(result)
    if judge and result is not None:
        params += [Param(k, v) for k, v in judge.items()]
        tags.append(RunTag("ablate.judge", judge_label(result.info["judge"])))
    if result is not None:
        for key, value in result.metrics.items():
            if is_number(value):
                metrics.append(Metric(metric_key(key), float(value), now, 0))
        for step, loss in result.info.get("loss_curve") or ():  # the loss chart, by step
            metrics.append(Metric("train/loss", float(loss), now, int(step)))
        curve = metric_key(f"intermediate/{job.objective.metric}")  # what a pruner compared
        for step, value in result.info.get("intermediate") or ():
            metrics.append(Metric(curve, float(value), now, int(step)))
        for key, value in result.info.items():
            if key in INFO_TAGS:
                tags.append(RunTag(f"info/{key}", str(value)))
            elif is_number(value):
                metrics.append(Metric(metric_key(f"info/{key}"), float(value), now, 0))
        if result.seconds:
            metrics.append(Metric("seconds", float(result.seconds), now, 0))
        for task, n in result.counts.items():
            metrics.append(Metric(metric_key(f"rows/{task}"), float(n), now, 0))
        if result.selection_hash:
            tags.append(RunTag("ablate.selection_hash", result.selection_hash))
    if error:
        tags.append(RunTag("ablate.error", error[:MAX_TAG_CHARS]))
    tags.append(RunTag("ablate.state", state))
    return metrics, params, tags


def judge_params(result: TrialResult | None) -> dict[str, str]:
    """`judge.<key>` params of a trial scored by an LLM judge (its `info["judge"]`: model, host,
    url without credentials or query, rubric version, settings; never the key)."""
    judge = result.info.get("judge") if result is not None else None
    if not isinstance(judge, dict):
        return {}
    return {f"judge.{k}": str(v)[:MAX_TAG_CHARS] for k, v in sorted(judge.items())}


def tag_sweep_judge(job: JobSpec, parent_run_id: str, identity: dict[str, Any]) -> None:
    """The sweep's judge as tags `ablate.judge.<key>` of its parent run (tags, not params: a
    rerun may be judged elsewhere, and the latest judge wins)."""
    from mlflow.entities import RunTag

    tags = [RunTag("ablate.judge", judge_label(identity))]
    tags += [RunTag(f"ablate.judge.{k}", str(v)[:MAX_TAG_CHARS]) for k, v in identity.items()]
    mlflow_client(job.tracking_uri).log_batch(parent_run_id, tags=tags)


def child_tags(job: JobSpec, parent_run_id: str, trial_number: int) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent_run_id,
        "ablate.study": job.study,
        "ablate.role": "trial",
        "optuna.trial_number": str(trial_number),
    }


def run_name(trial_number: int, mixture: Mixture) -> str:
    """`v2000-b1.00-s1 #17`: what tells seed replicates apart first (the UI's column cuts long
    names), the trial number after it (also the tag `optuna.trial_number`)."""
    return f"{mixture.name} #{trial_number}"


#: Numbers in a trial's `info` that name something (a process, a landscape draw): tags, since
#: as metrics the MLflow UI would chart them.
INFO_TAGS = frozenset({"worker_pid", "landscape_seed", "requeued_from"})


def log_selection(client: Any, run_id: str, result: TrialResult | None) -> None:
    """Artifact `selection.json`: the selected row ids and the rows per task type."""
    if result is not None and (result.row_ids or result.counts):
        selection = {
            "selection_hash": result.selection_hash,
            "counts": result.counts,
            "row_ids": list(result.row_ids),
        }
        client.log_text(run_id, json.dumps(selection), "selection.json")


def log_trial(
    job: JobSpec,
    parent_run_id: str,
    trial_number: int,
    mixture: Mixture,
    result: TrialResult | None,
    state: str,
    *,
    run_id: str | None = None,
    error: str | None = None,
    settings: str = "",
) -> str:
    """Finish (or create and finish) the child run of a trial; `state` is COMPLETE, PRUNED or FAIL.

    Metrics: every `result.metrics` value and every numeric `result.info` value (as `info/<key>`).
    Artifact `selection.json`: the selected row ids and the rows per task type.
    """
    # a trial that was never started as a run (short trials: see ablate.sweep.dispatcher.RUN_AFTER_SECONDS) is
    # created here and gets its params in the same log_batch as its metrics: 3 writes, not 5
    new = run_id is None
    if run_id is None:
        run_id = start_trial(job, parent_run_id, trial_number, mixture, params=False)
    client = mlflow_client(job.tracking_uri)
    metrics, params, tags = trial_batch(
        job, parent_run_id, trial_number, mixture, result, state, error, new, settings
    )
    # MLflow's log_batch limits: 1000 metrics, 100 params per call
    for i in range(0, max(len(metrics), len(params) * 10, 1), 1000):
        client.log_batch(
            run_id,
            metrics=metrics[i : i + 1000],
            params=params[i // 10 : i // 10 + 100],
            tags=tags if i == 0 else [],
        )
    log_selection(client, run_id, result)
    client.set_terminated(
        run_id, status="FINISHED" if state in ("COMPLETE", "PRUNED") else "FAILED"
    )
    return run_id


def child_runs(job: JobSpec, parent_run_id: str, status: str | None = None) -> list[Any]:
    """All child runs of a sweep (optionally only those with an MLflow `status`)."""
    client = mlflow_client(job.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id(job)], filter_string=query, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def mark_killed(
    job: JobSpec,
    parent_run_id: str,
    trial_numbers: list[int] | set[int],
    reason: str = "driver died while the trial ran",
) -> int:
    """Mark the still-RUNNING child runs of these trials (from a dead driver) KILLED; returns how many."""
    from mlflow.entities import RunTag

    wanted = {str(n) for n in trial_numbers}
    if not wanted:
        return 0
    client = mlflow_client(job.tracking_uri)
    n = 0
    for run in child_runs(job, parent_run_id, status="RUNNING"):
        if run.data.tags.get("optuna.trial_number") in wanted:
            client.log_batch(run.info.run_id, tags=[RunTag("ablate.error", reason)])
            client.set_terminated(run.info.run_id, status="KILLED")
            n += 1
    return n


def log_parent_artifact(
    job: JobSpec, parent_run_id: str, path: str | Path, artifact_path: str | None = None
) -> None:
    """Attach a file (a report, a plot) to the sweep's parent run."""
    mlflow_client(job.tracking_uri).log_artifact(parent_run_id, str(path), artifact_path)


def finish_sweep(
    job: JobSpec,
    parent_run_id: str,
    summary: dict[str, float],
    status: str = "FINISHED",
    tags: dict[str, str] | None = None,
) -> None:
    """Log the sweep's summary numbers (and `tags`) on the parent run and end it (`FINISHED`,
    `FAILED`, `KILLED`)."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(metric_key(k), float(v), now, 0) for k, v in summary.items() if is_number(v)]
    client = mlflow_client(job.tracking_uri)
    run_tags = [RunTag(k, v) for k, v in (tags or {}).items()]
    if metrics or run_tags:
        client.log_batch(parent_run_id, metrics=metrics, tags=run_tags)
    client.set_terminated(parent_run_id, status=status)


def find_sweep_run(job: JobSpec, uid: str | None = None) -> str | None:
    """The id of the sweep's parent run, found by its tags (`pick_parent`); None when none.

    Read-only: unlike `start_sweep` it creates no database, experiment or run and leaves the
    run's status alone (a report on a finished sweep must not mark it RUNNING again).
    """
    uri = job.tracking_uri
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        return None
    client = mlflow_client(uri)
    exp = client.get_experiment_by_name(job.study)
    if exp is None:
        return None
    candidates = _parents(client, str(exp.experiment_id), job)
    return pick_parent(candidates, redact(job.storage_url), uid)[0]


def log_parent_artifacts(
    job: JobSpec, parent_run_id: str, paths: list[Path], artifact_path: str | None = None
) -> None:
    """Attach files (a report: page, table, plots) to the sweep's parent run: one `log_artifacts`
    call when they are all the files of their folder, else one `log_artifact` per file."""
    client = mlflow_client(job.tracking_uri)
    folders = {Path(p).resolve().parent for p in paths}
    if len(folders) == 1:
        (folder,) = folders
        if {f.resolve() for f in folder.iterdir()} == {Path(p).resolve() for p in paths}:
            client.log_artifacts(parent_run_id, str(folder), artifact_path)
            return
    for path in paths:
        client.log_artifact(parent_run_id, str(path), artifact_path)
