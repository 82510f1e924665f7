"""A whole trial on CUDA through the product path (issue 11, item 3): `ablate trial JOB --json`.

    bash benchmarks/gpu_throughput.sh trial          # on the GPU machine (device tool, carry .whl)
    python benchmarks/gpu_trial.py --tiny --out DIR  # anywhere: the built-in tiny model, CPU

Builds, offline and with random weights, a Llava of 1.28B parameters (`LLAVA_1B`: a CLIP
ViT-L/14-336 tower + a TinyLlama-1.1B language model, the world's tokenizer), the built-in
world (images and multi-turn dialogues) and its pool; writes a job with `packing: true` and
`liger: true` (`--no-liger` without liger-kernel); runs `python -m ablate.cli trial JOB --json`
as a user would, which trains one LoRA adapter and scores the world bench with generation.
Writes DIR/gpu_trial.json: the trial's JSON, the wall times of each step, and the figures the
issue asks for (load + setup, training tokens/s, scoring time), and the trial switch: in this
process, a cold trial (load + adapter + first step) then a second mixture on the resident model
(new rows encoded, the adapter redrawn in place, first step), each stopped after its first
step, as a Ray worker runs them. The GPU machine has no Ray,
Optuna, MLflow or datasets: the trial path imports none of them
(tests/trial/test_layers_trial_imports.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

from ablate.pool import ImportRequest, import_pool
from ablate.world import (
    LLAVA_1B,
    TinyModelSpec,
    WorldSpec,
    build_tiny_model,
    synth_world,
    world_corpus,
)

SKILLS = ["colors", "layout", "compare", "lists"]


def write_job(work: Path, model: Path, volume: int, liger: bool, tiny: bool) -> Path:
    """The trial's job: one mixture (balanced over the world's skills), LoRA on all linear layers."""
    job = {
        "study": "gpu-trial",
        "storage": "sqlite:///optuna.db",
        "tracking": "sqlite:///mlflow.db",
        "pool": "pool",
        "bench": "world/bench.yaml",
        "taxonomy": "skill",
        "task_types": SKILLS,
        "model": {
            "path": str(model),
            "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
        },
        "train": {
            "epochs": 1,
            "lr": 2.0e-4 if not tiny else 5.0e-3,
            "batch_size": 8,
            "max_length": 4096 if not tiny else 1024,
            "packing": True,
            "liger": liger,
        },
        "objective": {"kind": "train", "metric": "overall_accuracy", "direction": "maximize"},
        "design": {"kind": "grid", "volumes": [volume], "balance": [1.0], "seeds": [0]},
    }
    path = work / "job.yaml"
    path.write_text("# ablate trial job.yaml --json\n" + yaml.safe_dump(job, sort_keys=False))
    return path


class StopAfterFirstStep(Exception):
    pass


def switch_times(job_path: Path, volume: int) -> dict[str, float]:
    """Seconds from `run_trial`'s call to the end of the first step: on an empty cache (cold),
    then for another mixture on the same cache (the resident model's trial switch)."""
    from transformers import TrainerCallback

    from ablate.plan import load_job, trial_mixture
    from ablate.trial import run_trial

    class FirstStep(TrainerCallback):
        def on_step_end(
            self, args: object, state: object, control: object, **kwargs: object
        ) -> None:
            raise StopAfterFirstStep

    job = load_job(job_path)
    first = replace(trial_mixture(job)[0], volume=volume)
    cache: dict[object, object] = {}
    out = {}
    for name, mixture in (("cold", first), ("switch", replace(first, seed=first.seed + 1))):
        start = time.perf_counter()
        try:
            run_trial(job, mixture, cache, callbacks=[FirstStep()])
        except StopAfterFirstStep:
            out[f"{name}_to_first_step_seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_trial.json")
    ap.add_argument(
        "--work", type=Path, default=None, help="build folder (default: OUT/../gpu-trial-work)"
    )
    ap.add_argument(
        "--tiny", action="store_true", help="the built-in tiny model (a CPU smoke test)"
    )
    ap.add_argument("--volume", type=int, default=1000, help="training dialogues")
    ap.add_argument("--no-liger", action="store_true", help="liger: false")
    ap.add_argument("--liger", action="store_true", help="liger: true even with --tiny")
    ap.add_argument(
        "--layers", type=int, default=0, help="this many layers per tower (a smoke test)"
    )
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or out.parent / "gpu-trial-work").resolve()
    walls: dict[str, float] = {}

    start = time.perf_counter()
    files = synth_world(WorldSpec(out=work / "world", n_train=max(args.volume * 2, 400)))
    walls["world"] = time.perf_counter() - start
    start = time.perf_counter()
    spec = TinyModelSpec() if args.tiny else LLAVA_1B
    if args.layers:
        spec = replace(spec, vision_layers=args.layers, text_layers=args.layers)
    model = build_tiny_model(work / "model", world_corpus(files), spec)
    walls["build_model"] = time.perf_counter() - start
    start = time.perf_counter()
    import_pool(ImportRequest(source=files.train, out=work / "pool"))
    walls["import_pool"] = time.perf_counter() - start

    job = write_job(
        work,
        model,
        args.volume,
        liger=args.liger or not (args.no_liger or args.tiny),
        tiny=args.tiny,
    )
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "trial", str(job), "--json"],
        cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    walls["ablate_trial"] = time.perf_counter() - start
    (out / "trial.stderr.txt").write_text(run.stderr)
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if run.returncode == 0 and lines else None
    figures = {}
    if result is not None:
        info = result.get("info", {})
        train_s, eval_s = float(info.get("train_seconds", 0)), float(info.get("eval_seconds", 0))
        figures = {
            "load_and_setup_seconds": float(result.get("seconds", 0)) - train_s - eval_s,
            "train_tokens_per_second": info.get("train_tokens_per_second"),
            "scoring_seconds": eval_s,
            "device": info.get("device"),
            "attn_implementation": info.get("attn_implementation"),
        }
    if result is not None:
        figures.update(switch_times(job, volume=16))
    report = {"returncode": run.returncode, "walls": walls, "figures": figures, "trial": result,
              "model_spec": spec.__dict__}  # fmt: skip
    (out / "gpu_trial.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({"returncode": run.returncode, "walls": walls, "figures": figures}, indent=2))
    if result is None:
        print(run.stderr[-4000:], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
