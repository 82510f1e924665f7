"""The `ablate` command line: every subcommand, its options and their help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SET_HELP = "override a key of the YAML file, e.g. --set {} (repeatable)"


def _add_set(p: argparse.ArgumentParser, example: str = "train.lr=1e-3") -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=SET_HELP.format(example),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablate",
        description="Data-mixture ablations for fine-tuning vision-language models: "
        "import dialogue pools, describe mixtures, run LoRA fine-tunes per mixture on Ray, "
        "search proportions with Optuna, track trials in MLflow.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo(sub)
    data = _add_data(sub)
    _add_data_import(data)
    _add_data_show(data)
    _add_mixture(sub)
    _add_trial_sweep(sub)
    _add_status_report(sub)
    _add_plan(sub)
    _add_propose(sub)
    return parser


def _add_demo(sub: Any) -> None:
    """`ablate demo`."""
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


def _add_data(sub: Any) -> Any:
    """`ablate data synth` (the group) and `show`."""
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
    return data


# long: one add_argument per option of `ablate data import`; split, its help would scatter
def _add_data_import(data: Any) -> None:
    """`ablate data import`: sources, validation, labels."""
    p = data.add_parser(
        "import",
        help="import dialogue sources into an Arrow pool",
        description="Import LLaVA/Ovis JSON or JSONL, the Hugging Face messages+images layout "
        "(JSONL, Parquet, a dataset saved to disk, any datasets.load_dataset source) into one "
        "memory-mapped Arrow pool, validating and labelling every record. Several sources make "
        "one combined pool with a `source` label (NAME=PATH names a source; "
        "--image-root NAME=DIR gives it its own image folder). A source of a combined pool "
        "that gives no row is an error.",
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
        "--layout",
        default="auto",
        choices=["auto", "llava", "hf", "cauldron"],
        help="record layout: auto (by its keys; default), llava (conversations), hf (messages + "
        "images), cauldron (texts + images); force one when records have the keys of several",
    )
    p.add_argument(
        "--image-root",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="folder relative image paths resolve against (default: the source's folder); "
        "DIR for every source, NAME=DIR for source NAME's own (repeatable)",
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
        help="also decode every image fully with Pillow: catches corrupt and truncated files, "
        "slower",
    )
    p.add_argument(
        "--duplicate-ids",
        choices=["error", "rename"],
        default="error",
        help="error: a repeated id is invalid (default); rename: the 2nd copy of ID becomes "
        "ID#2, the 3rd ID#3 (LLaVA-style files reuse an image's id for several dialogues)",
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


def _add_data_show(data: Any) -> None:
    """`ablate data show`."""
    p = data.add_parser("show", help="counts per label of a pool")
    p.add_argument("pool", type=Path, help="pool folder")


def _add_mixture(sub: Any) -> None:
    """`ablate mixture show|materialize`."""
    mix = sub.add_parser("mixture", help="inspect and materialise mixtures").add_subparsers(
        dest="mixture_command", metavar="SUBCOMMAND", required=True
    )
    p = mix.add_parser("show", help="resolved proportions, rows per type and balance of a mixture")
    p.add_argument("mixture", type=Path, help="mixture YAML file")
    p.add_argument("--pool", type=Path, required=True, help="pool folder")
    _add_set(p, "volume=2000")
    p = mix.add_parser("materialize", help="write the selected row ids of a mixture as Parquet")
    p.add_argument("mixture", type=Path, help="mixture YAML file")
    p.add_argument("--pool", type=Path, required=True, help="pool folder")
    p.add_argument(
        "--out", type=Path, required=True, help="Parquet file to write (columns id, task_type, ...)"
    )
    _add_set(p, "volume=2000")


def _add_trial_sweep(sub: Any) -> None:
    """`ablate trial` and `ablate sweep`."""
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
    _add_judge_probe(p)
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
    p.add_argument(
        "--allow-changed-settings",
        action="store_true",
        help="the study's trials were trained with other settings (model, LoRA, train, bench, "
        "pool, objective, task types) than this job: run the job's trials anyway, recording "
        "the change as a factor (new trials carry its settings_id, which the trial table's "
        "`settings` column keeps apart). Without it such a rerun is refused before any work",
    )
    _add_judge_probe(p)
    _add_set(p)


def _add_judge_probe(p: Any) -> None:
    p.add_argument(
        "--skip-judge-probe",
        action="store_true",
        help="a bench scored by an LLM judge is checked before any training (key, server, "
        "model, one test rating: always) and probed (a few reference answers rated against "
        "themselves must reach 4 of 5); skip the probe, e.g. for a judge known to be strict",
    )


def _add_status_report(sub: Any) -> None:
    """`ablate status` and `ablate report`."""
    p = sub.add_parser(
        "status",
        help="counts by state, best so far, time left",
        description="Read the job's study: trials by state (per model; a ladder: per rung), "
        "the last failed trials with their errors, the recorded settings, the best trial, "
        "the time left and who drives the study.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    _add_set(p)

    p = sub.add_parser(
        "report",
        help="answer the study: verdict, intervals, surrogates, plots, HTML",
        description="Read the job's study; test whether less is more (each smaller volume "
        "against the largest, seed noise pooled over cells, family-wise error 5%), "
        "fit surrogates, write DIR/report.html (self-contained), the PNG plots and "
        "DIR/trials.csv, and log them to the sweep's MLflow run.",
    )
    p.add_argument("job", type=Path, help="job YAML file")
    p.add_argument("--out", type=Path, required=True, help="folder to write the report into")
    p.add_argument(
        "--metric", default=None, help="metric to analyse (default: the job's objective metric)"
    )
    p.add_argument(
        "--direction",
        choices=["maximize", "minimize"],
        default=None,
        help="which way --metric is better (default: the job's objective direction for its own "
        "metric, minimize for a loss such as bench_loss or heldout_loss, else maximize)",
    )
    p.add_argument(
        "--volume",
        type=float,
        default=None,
        help="target volume (rows, positive) of the proposed mixtures (default: near the best "
        "tried mixtures' volumes, within 0.25 SD of their log volume; far outside the tried "
        "volumes the report warns of the extrapolation)",
    )
    p.add_argument(
        "--no-mlflow", action="store_true", help="do not log the report to the sweep's MLflow run"
    )
    _add_set(p)


def _add_plan(sub: Any) -> None:
    """`ablate plan`."""
    p = sub.add_parser(
        "plan",
        help="seeds per mixture needed to detect an effect (power), and what the design detects",
        description="From the seed noise of a pilot study (default: the job's own study) or a "
        "given SD: the smallest volume effect the job's grid detects with 80% power (the "
        'calibrated "less is more" test, family-wise error 5%), and with --effect X the '
        "seeds per mixture it needs to detect X.",
    )
    p.add_argument("job", type=Path, help="job YAML file (a grid design)")
    p.add_argument("--effect", type=float, default=None, help="effect to detect (metric units)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--noise", type=float, default=None, help="seed SD of one trial")
    noise.add_argument(
        "--pilot",
        default=None,
        help="a pilot job file, or a study name in the job's storage, whose seed noise to use",
    )
    _add_set(p)


def _add_propose(sub: Any) -> None:
    """`ablate propose`."""
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
        help="target volume in rows, positive (default: near the best tried mixtures' volumes, "
        "within 0.25 SD of their log volume)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        # not `choices`: reading the surrogate registry imports numpy and the analysis stage,
        # and `ablate --help` stays fast; propose checks the name (did-you-mean on a typo)
        help="surrogate to use: loglinear, mixing_law, gp or ensemble, or any other registered "
        "in ablate/analysis/surrogate_models/ (default: the lowest held-out regret of the top "
        "pick)",
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="comma-separated seeds per proposal (default: the design's seeds)",
    )
    p.add_argument(
        "--for-model",
        default=None,
        metavar="NAME",
        help="a study across models (`models:`): the model to propose for, fitted on its trials "
        "alone and trained on it (default: the one the report shows, the latest trained)",
    )
    p.add_argument(
        "--best",
        action="store_true",
        help="enqueue the best tried mixture again at --seeds instead of new mixtures (a "
        "search runs each mixture once: its seed replicates)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the proposals without enqueuing them"
    )
    _add_set(p)
