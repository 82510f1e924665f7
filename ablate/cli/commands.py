"""What each `ablate` subcommand does: parse nothing, call the stages, print the outcome.

Each command imports its stage when it runs (the only imports of ablate's modules inside
functions): `ablate --help` and the pure data commands must not pay for numpy, pyarrow, Optuna
or Ray at start-up.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ablate.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    from ablate.config import JobSpec
    from ablate.pool import PoolManifest


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; a job command loads and checks its job file first."""
    if args.command in PLAIN:
        return PLAIN[args.command](args)
    from ablate.plan import load_job

    return JOB_COMMANDS[args.command](load_job(args.job, args.overrides), args)


def _run_demo(args: argparse.Namespace) -> int:
    from ablate.demo import DemoSpec, run_demo

    run_demo(DemoSpec(out=args.out, overrides=tuple(args.overrides)))
    return 0


def _run_mixture(args: argparse.Namespace) -> int:
    from ablate.mixture import check_out_path, load_mixture, materialize, mixture_summary, validate
    from ablate.pool import open_pool

    mixture = load_mixture(args.mixture, args.overrides)
    pool = open_pool(args.pool)
    if args.mixture_command == "show":
        print(mixture_summary(mixture, pool, source=str(args.mixture)))
        return 0
    validate(mixture, pool.manifest, source=str(args.mixture))
    check_out_path(args.out)  # before the work, not after it
    selection = materialize(mixture, pool)
    selection.to_parquet(args.out, pool)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(selection.counts.items()))
    print(
        f"wrote {len(selection.ids)} row ids to {args.out} ({counts}); content hash {selection.content_hash[:16]}"
    )
    return 0


def _run_sweep(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.plan import job_task_types, validate_job
    from ablate.sweep import run_sweep

    for line in validate_job(job):  # e.g. bench dialogues that cannot be scored
        print(line, file=sys.stderr, flush=True)
    summary = run_sweep(
        job,
        job_task_types(job),
        address=args.address,
        allow_changed_settings=args.allow_changed_settings,
        judge_probe=not args.skip_judge_probe,
    )
    print(summary.line(job.study))
    if summary.pareto_front:
        print(
            f"Pareto front ({job.objective.metric} vs {job.design.multi_objective}): trials "
            + ", ".join(map(str, summary.pareto_front))
        )
    for line in summary.ladder:
        print(line)
    if summary.n_failed:  # exit 1: trials failed in this run (`ablate status` shows why)
        again = (
            "a search does not rerun them (they count toward `design.n_trials`, and its "
            "sampler keeps away from their mixtures): raise `design.n_trials` to search on"
            if job.design.kind == "search"
            else "`ablate sweep` again retries them"
        )
        print(
            f"ablate: {summary.n_failed} trial(s) failed in this run; "
            f"`{job.command('status', args.job)}` shows their errors, and {again}",
            file=sys.stderr,
        )
        return 1
    return 0


def _run_status(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.sweep import study_status

    print(study_status(job))
    return 0


def _run_plan(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.analysis.plan_seeds import plan_text

    print(plan_text(job, effect=args.effect, noise=args.noise, pilot=args.pilot))
    return 0


def _run_report(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.analysis.report import summary_text, write_report

    report = write_report(
        job,
        args.out,
        metric=args.metric,
        volume=args.volume,
        log_to_mlflow=not args.no_mlflow,
        direction=args.direction,
    )
    print(summary_text(report))
    return 0


def _seeds_option(text: str) -> tuple[int, ...]:
    """`--seeds 0,1,2`: each seed once, in the range a trial can take."""
    from ablate.config.seeds import check_seeds

    try:
        seeds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UserError(
            f"--seeds must be comma-separated whole numbers such as 0,1,2; got {text!r}"
        ) from None
    if len(set(seeds)) < len(seeds):
        raise UserError(f"--seeds lists a seed twice ({text}); list each seed once")
    check_seeds({"--seeds": seeds}, "ablate propose")
    return seeds


def _run_propose(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.analysis.report import propose_and_enqueue

    seeds = None if args.seeds is None else _seeds_option(args.seeds)
    done = propose_and_enqueue(
        job, args.n, args.volume, seeds, args.model, dry_run=args.dry_run,
        for_model=args.for_model, best=args.best,
    )  # fmt: skip
    if done.for_model:
        print(f"proposals for model {done.for_model} (fitted on its trials alone, trained on it)")
    for i, p in enumerate(done.proposals, 1):
        print(f"{i}. {p.describe(job.objective.metric)}")
    print(done.statement)
    if args.dry_run:
        print("dry run: nothing enqueued")
    elif not done.trials:  # an earlier `propose` enqueued the same mixtures and seeds
        print(
            f"enqueued nothing: study `{job.study}` already has these mixtures at these seeds "
            f"(waiting or run); `{job.command('sweep', args.job)}` runs what waits"
        )
    else:
        print(
            f"enqueued {done.trials} trial(s) into study `{job.study}` "
            f"({done.model}, held-out Spearman {done.spearman:.3f}); run them with "
            f"`{job.command('sweep', args.job)}`"
        )
    return 0


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        from ablate.world import WorldSpec, build_tiny_model, synth_world, world_corpus

        files = synth_world(WorldSpec(out=args.out, n_train=args.n_train, seed=args.seed))
        print(
            f"wrote {files.n_train} training dialogues to {files.train}, {files.n_bench} bench dialogues "
            f"to {files.bench} ({files.bench_yaml}), images in {files.images}"
        )
        if not args.no_model:
            model = build_tiny_model(args.out / "models" / "tiny-llava", world_corpus(files))
            print(f"built the tiny offline model in {model}")
        return 0
    from ablate.pool import open_pool, show_pool

    if args.data_command == "import":
        return _run_data_import(args)
    print(show_pool(open_pool(args.pool)))
    return 0


def _run_data_import(args: argparse.Namespace) -> int:
    """`ablate data import`: the sources into one pool, with a progress line on stderr."""
    import time

    from ablate.pool import (
        ImportProgress,
        ImportRequest,
        import_pool,
        open_pool,
        parse_image_roots,
        parse_source,
        parse_turns,
    )
    from ablate.pool.labels import parse_label_args, read_label_file

    rules = read_label_file(args.labels) if args.labels else ()
    rules += parse_label_args(args.label_rules)
    start = time.perf_counter()
    done = {"n": 0}

    def progress(state: ImportProgress) -> None:
        done["n"] = state.records
        line = state.line(time.perf_counter() - start)
        print(f"\r  {line}  ", end="", file=sys.stderr, flush=True)

    image_root, sources = parse_image_roots(args.image_root, [parse_source(s) for s in args.source])
    was = open_pool(args.out).manifest if (args.out / "manifest.json").is_file() else None
    try:
        manifest = import_pool(
            ImportRequest(
                source=sources,
                out=args.out,
                image_root=image_root,
                on_invalid=args.on_invalid,
                check_images=not args.no_check_images,
                format=args.format,
                layout=args.layout,
                split=args.split,
                decode_images=args.decode_images,
                duplicate_ids=args.duplicate_ids,
                allow_outside_root=args.allow_outside_root,
                turns=parse_turns(args.turns),
                labels=rules,
            ),
            progress=progress,
        )
    finally:  # the progress line ended, also before an error's or a Ctrl-C's line (review q#14)
        if done["n"]:
            print(file=sys.stderr)
    _say_imported(manifest, args.out, was)
    return 0


def _say_imported(manifest: PoolManifest, out: Path, was: PoolManifest | None) -> None:
    """What an import made: its rows, what it skipped and replaced, and the pool's labels."""
    from ablate.pool import open_pool, show_pool

    skipped = (
        f", skipped {manifest.skipped:,} (see {manifest.skipped_report})"
        if manifest.skipped
        else ""
    )
    dialogues = "dialogue" if manifest.rows == 1 else "dialogues"
    print(f"imported {manifest.rows:,} {dialogues} into {out}{skipped}")
    if was is not None:  # a study drawn from the old pool refuses this one by its settings
        print(_replaced(was, manifest), file=sys.stderr)
    print(show_pool(open_pool(out)))


def _replaced(was: PoolManifest, now: PoolManifest) -> str:
    same = "the same dialogues" if was.fingerprint == now.fingerprint else "new dialogues"
    rows = f"{was.rows:,} row{'' if was.rows == 1 else 's'}"
    return f"replaced the pool that was there ({rows}; now {same})"


def _run_trial(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.objectives import run_objective
    from ablate.plan import check_job_judge, trial_mixture
    from ablate.sweep.summary import unusable_metric
    from ablate.trial.checkpoints import FINISHED_CHECKPOINT, forget_checkpoint

    mixture, warnings = trial_mixture(job, args.mixture)
    for line in warnings:  # some bench dialogues left out: say so before training
        print(line, file=sys.stderr, flush=True)
    judge = check_job_judge(job, probe=not args.skip_judge_probe)  # before any training
    if judge is not None:
        print(judge.line(), file=sys.stderr, flush=True)
    result = run_objective(job, mixture)
    forget_checkpoint(result.info.pop(FINISHED_CHECKPOINT, None))  # printed: nothing to resume
    if args.json:
        print(
            json.dumps(
                {
                    "mixture": mixture.name,
                    "metrics": result.metrics,
                    "counts": result.counts,
                    "selection_hash": result.selection_hash,
                    "seconds": result.seconds,
                    "info": result.info,
                }
            )
        )
    else:
        rows = (
            f"{len(result.row_ids)} rows" if result.row_ids else f"{job.objective.kind} objective"
        )
        print(f"trial {mixture.name}: {rows} in {result.seconds:.1f} s")
        for key, value in sorted(result.metrics.items()):
            print(f"  {key:40s} {value:.4f}")
    got = result.metrics.get(job.objective.metric)
    if not isinstance(got, int | float) or not math.isfinite(got):  # as a sweep would fail
        raise UserError(unusable_metric(job.objective.metric, got, result.metrics))
    return 0


#: Commands that take no job file, and those that load one (`ablate COMMAND JOB.yaml`).
PLAIN: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _run_demo,
    "data": _run_data,
    "mixture": _run_mixture,
}
JOB_COMMANDS: dict[str, Callable[[JobSpec, argparse.Namespace], int]] = {
    "trial": _run_trial,
    "sweep": _run_sweep,
    "status": _run_status,
    "report": _run_report,
    "plan": _run_plan,
    "propose": _run_propose,
}
