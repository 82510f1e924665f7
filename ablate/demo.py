"""`ablate demo`: world -> pool -> sweep of the demo job -> plot and table, in one command."""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ablate import tracking
from ablate.analysis import analyse, load, mixture_effect, mixture_table, plot_volume_balance
from ablate.config import keep_out_of_ray_uploads, writable_folder
from ablate.plan import job_task_types, load_job, validate_job
from ablate.pool import ImportRequest, import_pool, open_pool
from ablate.sweep import run_sweep
from ablate.world import WorldSpec, build_tiny_model, synth_world, world_corpus

DEMO_JOB = "demo.yaml"


def shipped_file(folder: str, name: str) -> Path:
    """A file shipped with ablate: `jobs/` or `mixtures/` of the package (links to the source
    tree's folders, copied into an installed package by `package-data`)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / folder / name, here.parent / folder / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"shipped file {folder}/{name} not found next to {here}")


@dataclass(frozen=True)
class DemoSpec:
    out: Path
    """Folder for everything the demo writes; rerunning on it resumes the sweep."""
    overrides: tuple[str, ...] = ()
    """`--set key=value` overrides of the demo job."""
    n_train: int = 8000
    """Dialogues in the world's training set."""


@dataclass(frozen=True)
class DemoResult:
    job: Path
    plot: Path
    table: str
    effect: str
    seconds: float


def run_demo(spec: DemoSpec, say: Callable[[str], None] = print) -> DemoResult:
    start = time.perf_counter()
    out = spec.out.resolve()
    writable_folder(out, "demo")
    keep_out_of_ray_uploads(out)
    say(f"1/4 world: {out / 'world'}")
    world = synth_world(WorldSpec(out=out / "world", n_train=spec.n_train))
    build_tiny_model(out / "world" / "models" / "tiny-llava", world_corpus(world))

    pool_dir = out / "pool"
    pool = open_pool(pool_dir) if (pool_dir / "manifest.json").is_file() else None
    fresh = (
        pool is not None
        and Path(pool.manifest.source) == world.train.resolve()
        # a world rewritten with another spec after the import needs a new pool
        and (pool_dir / "manifest.json").stat().st_mtime >= world.train.stat().st_mtime
    )
    if pool is not None and fresh:
        say(f"2/4 pool: reusing {pool_dir} ({pool.manifest.rows} dialogues)")
    else:
        manifest = import_pool(ImportRequest(source=world.train, out=pool_dir))
        say(f"2/4 pool: imported {manifest.rows} dialogues into {pool_dir}")

    job_path = out / "job.yaml"
    if not job_path.exists():
        shutil.copyfile(shipped_file("jobs", DEMO_JOB), job_path)
    job = load_job(job_path, spec.overrides)
    say(f"3/4 sweep: study `{job.study}` ({job_path}); rerun the same command to resume")
    validate_job(job)
    summary = run_sweep(job, job_task_types(job))

    df = load(job)
    plot = plot_volume_balance(df, out / "volume_balance.png", label=job.objective.metric)
    tracking.log_parent_artifact(job, summary.parent_run_id, plot)
    table = mixture_table(df).round(3).to_string()
    effect = mixture_effect(df).describe(job.objective.metric)
    effect += "\n" + analyse(df).headline()
    seconds = time.perf_counter() - start
    say("4/4 results (one row per mixture; mean / min / max over seeds):")
    say(table)
    say(effect)
    say(
        f"\nDone in {seconds:.0f} s. {summary.n_complete} trials complete, {summary.n_failed} failed.\n"
        f"  job:            {job_path}\n"
        f"  plot:           {plot}\n"
        f"  Optuna storage: {job.storage_url}\n"
        f"  MLflow runs:    {job.tracking_uri}\n"
        f"Look at them:\n"
        f"  {tracking.sweep_links(job, summary.parent_run_id)}\n"
        f"  optuna-dashboard {job.storage_url}\n"
        f"  {job.command('status', str(job_path))}\n"
        f"  {job.command('report', str(job_path))} --out {shlex.quote(str(out / 'report'))}"
    )
    return DemoResult(job=job_path, plot=plot, table=table, effect=effect, seconds=seconds)
