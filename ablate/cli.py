"""The `ablate` command: parses arguments and calls the stages. Heavy imports happen per command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.errors import UserError

if TYPE_CHECKING:
    from ablate.config import JobSpec

SET_HELP = "override a key of the YAML file, e.g. --set train.lr=1e-3 (repeatable)"


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Data-mixture ablations for fine-tuning vision-language models: "
        "import dialogue pools, describe mixtures, run LoRA fine-tunes per mixture on Ray, "
        "search proportions with Optuna, track trials in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo",
        help="run the built-in end-to-end demo sweep on this machine",
        description="Make the built-in world, import it, run jobs/demo.yaml as a sweep "
        "(Ray + Optuna + MLflow), plot score against volume and balance. "
        "Rerunning on the same --out resumes the sweep.",
    )
    p.add_argument(
        "--out", type=Path, default=Path("demo-out"), help="output folder (default: demo-out)"
    )
    _add_set(p)

    data = sub.add_parser("data", help="make, import and inspect dialogue pools").add_subparsers(
        dest="data_command", metavar="SUBCOMMAND", required=True
    )
    p = data.add_parser(
        "synth",
        help="write the built-in miniature MMCR-like world",
        description="Write the world's training set (LLaVA JSONL + PNG images), its "
        "held-out bench and the tiny offline model built for it.",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the world into")
    p.add_argument("--n-train", type=int, default=8000, help="training dialogues (default 8000)")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--no-model", action="store_true", help="do not build the tiny model")

    p = data.add_parser(
        "import",
        help="import dialogue sources into an Arrow pool",
        description="Import LLaVA/Ovis JSON or JSONL, the Hugging Face messages+images layout "
        "(JSONL, Parquet, a dataset saved to disk, any datasets.load_dataset source) into one "
        "memory-mapped Arrow pool, validating and labelling every record. Several sources make "
        "one combined pool with a `source` label (NAME=PATH names a source).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="label rules (--label NAME=RULE, or NAME: RULE in --labels FILE.yaml):\n"
        "  images:0=text_only,1=single_image,2+=multi_image   buckets of the image count\n"
        "  turns:1-4=short,5+=long                             buckets of assistant turns\n"
        "  field:subtopic                                      a record field (else `unknown`)\n"
        "  python:MODULE:FUNCTION                              FUNCTION(record) -> str\n"
        "  value:TEXT                                          the same label for every record\n"
        "The default task_type is images:0=text_only,1=single_image,2+=multi_image.",
    )
    p.add_argument(
        "source",
        nargs="+",
        metavar="SOURCE",
        help="a JSON/JSONL/Parquet file or a dataset folder; NAME=PATH names it in a combined pool",
    )
    p.add_argument("--out", type=Path, required=True, help="pool folder to write")
    p.add_argument(
        "--format",
        default="auto",
        help="auto (by suffix; default), json, jsonl, parquet, disk (save_to_disk folder), "
        "dataset (datasets.load_dataset(PATH)), or a load_dataset builder such as csv or arrow",
    )
    p.add_argument(
        "--split", default="train", help="split of a Hugging Face source (default train)"
    )
    p.add_argument(
        "--image-root",
        type=Path,
        default=None,
        help="folder relative image paths resolve against (default: the source's folder)",
    )
    p.add_argument(
        "--on-invalid",
        choices=["error", "skip"],
        default="error",
        help="error: stop at the first bad record; skip: keep good ones, report the rest",
    )
    p.add_argument(
        "--no-check-images", action="store_true", help="do not check that image files exist"
    )
    p.add_argument(
        "--decode-images",
        action="store_true",
        help="also decode every image with Pillow (verify): catches corrupt files, slower",
    )
    p.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="accept absolute image paths and paths leaving the image root with ../",
    )
    p.add_argument(
        "--turns",
        default=None,
        metavar="MIN:MAX",
        help="allowed assistant turns per dialogue, e.g. 4:8, 4: or :8 (others are invalid)",
    )
    p.add_argument(
        "--label",
        dest="label_rules",
        action="append",
        default=[],
        metavar="NAME=RULE",
        help="add or redefine a label column (repeatable; rules below)",
    )
    p.add_argument(
        "--labels", type=Path, default=None, help="YAML file of label rules (NAME: RULE per line)"
    )

    p = data.add_parser("show", help="counts per label of a pool")
    p.add_argument("pool", type=Path, help="pool folder")

    mix = sub.add_parser("mixture", help="inspect and materialise mixtures").add_subparsers(
        dest="mixture_command", metavar="SUBCOMMAND", required=True
    )
    p = mix.add_parser("show", help="resolved proportions, rows per type and balance of a mixture")
    p.add_argument("mixture", type=Path, help="mixture YAML file")
    p.add_argument("--pool", type=Path, required=True, help="pool folder")
    _add_set(p)
    p = mix.add_parser("materialize", help="write the selected row ids of a mixture as Parquet")
    p.add_argument("mixture", type=Path, help="mixture YAML file")
    p.add_argument("--pool", type=Path, required=True, help="pool folder")
    p.add_argument(
        "--out", type=Path, required=True, help="Parquet file to write (columns id, task_type, ...)"
    )
    _add_set(p)

    p = sub.add_parser(
        "trial",
        help="run one trial (fine-tune + benchmark) without Ray",
        description="Run one trial of the job: by default its design's first mixture, "
        "or the mixture file given with --mixture.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument(
        "--mixture",
        type=Path,
        default=None,
        help="mixture YAML file to train on (default: the job's `mixture`, else its design's first)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_set(p)

    p = sub.add_parser(
        "sweep",
        help="run or resume the job's sweep on Ray",
        description="Enqueue the job's design into its Optuna study and run every trial on "
        "Ray, logging to MLflow. Running it again resumes the same study.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument(
        "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"
    )
    _add_set(p)

    p = sub.add_parser("status", help="counts by state, best so far, time left")
    p.add_argument("job", type=Path, help="job YAML file")
    _add_set(p)

    p = sub.add_parser(
        "report",
        help="answer the study: verdict, intervals, surrogates, plots, HTML",
        description="Read the job's study; test whether less is more (bootstrap over seeds), "
        "fit surrogates, write DIR/report.html (self-contained), the PNG plots and "
        "DIR/trials.csv, and log them to the sweep's MLflow run.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument("--out", type=Path, required=True, help="folder to write the report into")
    p.add_argument(
        "--metric", default=None, help="metric to analyse (default: the job's objective metric)"
    )
    p.add_argument(
        "--volume",
        type=float,
        default=None,
        help="target volume (rows) of the proposed mixtures (default: the best tested volume)",
    )
    p.add_argument(
        "--no-mlflow", action="store_true", help="do not log the report to the sweep's MLflow run"
    )
    _add_set(p)

    p = sub.add_parser(
        "propose",
        help="enqueue the surrogate's N best mixtures into the study",
        description="Fit the surrogates to the study's completed trials and enqueue the N best "
        "mixtures at the target volume (once per seed of the design) as trials; the next "
        "`ablate sweep JOB.yaml` runs them.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument("-n", type=int, default=3, help="how many mixtures to propose (default 3)")
    p.add_argument(
        "--volume",
        type=float,
        default=None,
        help="target volume in rows (default: the best tested volume)",
    )
    p.add_argument(
        "--model",
        choices=["loglinear", "mixing_law", "gp"],
        default=None,
        help="surrogate to use (default: the best by held-out Spearman)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds per proposal (default: the design's seeds)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the proposals without enqueuing them"
    )
    _add_set(p)
    return parser


def run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from ablate.demo import DemoSpec, run_demo

        run_demo(DemoSpec(out=args.out, overrides=tuple(args.overrides)))
        return 0
    if cmd == "data":
        return _run_data(args)
    if cmd == "mixture":
        from ablate.mixture import load_mixture, materialize, mixture_summary, validate
        from ablate.pool import open_pool

        mixture = load_mixture(args.mixture, args.overrides)
        pool = open_pool(args.pool)
        if args.mixture_command == "show":
            print(mixture_summary(mixture, pool, source=str(args.mixture)))
            return 0
        validate(mixture, pool.manifest, source=str(args.mixture))
        selection = materialize(mixture, pool)
        selection.to_parquet(args.out, pool)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(selection.counts.items()))
        print(
            f"wrote {len(selection.ids)} row ids to {args.out} ({counts}); content hash {selection.content_hash[:16]}"
        )
        return 0

    from ablate.config import job_task_types, load_job, validate_job

    job = load_job(args.job, args.overrides)
    if cmd == "trial":
        return _run_trial(job, args)
    if cmd == "sweep":
        from ablate.sweep import run_sweep

        validate_job(job)
        summary = run_sweep(job, job_task_types(job), address=args.address)
        best = (
            f"{summary.best_value:.4g} (trial {summary.best_trial}, {summary.best_mixture.name})"
            if summary.best_mixture
            else "-"
        )
        print(
            f"sweep `{job.study}`: {summary.n_complete} complete, {summary.n_failed} failed this run, "
            f"best {best}, {summary.wall_seconds:.0f} s"
        )
        if summary.pareto_front:
            print(
                f"Pareto front ({job.objective.metric} vs {job.design.multi_objective}): trials "
                + ", ".join(map(str, summary.pareto_front))
            )
        return 0
    if cmd == "status":
        from ablate.sweep import study_status

        print(study_status(job))
        return 0
    if cmd == "report":
        from ablate.analysis.report import summary_text, write_report

        report = write_report(
            job, args.out, metric=args.metric, volume=args.volume, log_to_mlflow=not args.no_mlflow
        )
        print(summary_text(report))
        return 0
    if cmd == "propose":
        from ablate.analysis.report import propose_and_enqueue

        try:
            seeds = tuple(int(x) for x in args.seeds.split(",")) if args.seeds else None
        except ValueError:
            raise UserError(
                f"--seeds must be comma-separated integers, got {args.seeds!r}"
            ) from None
        done = propose_and_enqueue(
            job, args.n, args.volume, seeds, args.model, dry_run=args.dry_run
        )
        for i, p in enumerate(done.proposals, 1):
            print(f"{i}. {p.describe(job.objective.metric)}")
        if args.dry_run:
            print("dry run: nothing enqueued")
        else:
            print(
                f"enqueued {done.trials} trial(s) into study `{job.study}` "
                f"({done.model}, held-out Spearman {done.spearman:.3f}); run them with "
                f"`ablate sweep {args.job}`"
            )
        return 0
    raise AssertionError(cmd)


def _run_data(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        from ablate.models import build_tiny_model
        from ablate.world import WorldSpec, synth_world, world_corpus

        files = synth_world(WorldSpec(out=args.out, n_train=args.n_train, seed=args.seed))
        print(
            f"wrote {files.n_train} training dialogues to {files.train}, {files.n_bench} bench dialogues "
            f"to {files.bench} ({files.bench_yaml}), images in {files.images}"
        )
        if not args.no_model:
            model = build_tiny_model(args.out / "models" / "tiny-llava", world_corpus(files))
            print(f"built the tiny offline model in {model}")
        return 0
    from ablate.pool import ImportRequest, import_pool, open_pool, show_pool

    if args.data_command == "import":
        import time

        from ablate.pool import parse_source, parse_turns
        from ablate.pool.labels import parse_label_args, read_label_file

        rules = read_label_file(args.labels) if args.labels else ()
        rules += parse_label_args(args.label_rules)
        start = time.perf_counter()
        done = {"n": 0}

        def progress(n: int) -> None:
            done["n"] = n
            rate = n / max(time.perf_counter() - start, 1e-9)
            print(f"\r  {n:,} records read ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

        manifest = import_pool(
            ImportRequest(
                source=[parse_source(s) for s in args.source],
                out=args.out,
                image_root=args.image_root,
                on_invalid=args.on_invalid,
                check_images=not args.no_check_images,
                format=args.format,
                split=args.split,
                decode_images=args.decode_images,
                allow_outside_root=args.allow_outside_root,
                turns=parse_turns(args.turns),
                labels=rules,
            ),
            progress=progress,
        )
        if done["n"]:
            print(file=sys.stderr)
        skipped = (
            f", skipped {manifest.skipped} (see {manifest.skipped_report})"
            if manifest.skipped
            else ""
        )
        print(f"imported {manifest.rows:,} dialogues into {args.out}{skipped}")
        print(show_pool(open_pool(args.out)))
        return 0
    print(show_pool(open_pool(args.pool)))
    return 0


def _run_trial(job: JobSpec, args: argparse.Namespace) -> int:
    from ablate.config import job_task_types, validate_job
    from ablate.trial import run_objective

    if args.mixture is not None or job.mixture is not None:
        from ablate.config import build, resolve_path
        from ablate.mixture import Mixture, check_mixture, load_mixture, validate
        from ablate.pool import open_pool

        if args.mixture is not None:
            mixture, where = load_mixture(args.mixture), str(args.mixture)
        elif isinstance(job.mixture, dict):  # inline in the job file
            where = f"{job.source} (`mixture`)"
            inline = {"taxonomy": job.taxonomy, **job.mixture}  # the job's task types by default
            mixture = check_mixture(build(Mixture, inline, job.source, "mixture."), where)
        else:
            assert isinstance(job.mixture, str)
            path = resolve_path(job.mixture, job.base_dir)
            mixture, where = load_mixture(path), str(path)
        if job.objective.kind == "train":
            assert job.pool_dir is not None  # load_job requires it for kind train
            validate(mixture, open_pool(job.pool_dir).manifest, source=where)
    else:
        from ablate.sweep import design_mixtures

        validate_job(job)
        mixture = design_mixtures(job, job_task_types(job))[0]
    result = run_objective(job, mixture)
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
        print(f"trial {mixture.name}: {len(result.row_ids)} rows in {result.seconds:.1f} s")
        for key, value in sorted(result.metrics.items()):
            print(f"  {key:40s} {value:.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ablate data show POOL | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ablate: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
