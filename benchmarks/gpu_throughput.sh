#!/usr/bin/env bash
# The trainer-throughput benchmark (issue 4's targets) on a GPU machine with no network.
#
#   bash benchmarks/gpu_throughput.sh fetch   # here, once: the wheels into .whl/ (git-ignored)
#   bash benchmarks/gpu_throughput.sh run     # there (the device tool: carry [".whl"])
#   bash benchmarks/gpu_throughput.sh run --tiny   # other benchmark arguments (a CPU smoke test)
#   bash benchmarks/gpu_throughput.sh trial   # there: a whole ~1.3B Llava trial through
#                                             # `ablate trial --json` (benchmarks/gpu_trial.py)
#
# The GPU image has torch, transformers and peft but older transformers than ablate is tested
# with, and no liger-kernel: the three travel as wheels and are installed into /tmp/site, with
# regex (transformers 5.24 checks its version at import; the image's huggingface-hub 1.33,
# tokenizers 0.23.2, safetensors 0.8.0 and accelerate 1.15 already pass that check).
# ablate itself runs from the checkout (PYTHONPATH): the benchmark needs none of its sweep
# dependencies (Ray, Optuna, MLflow).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(transformers==5.24.0 peft==0.21.2 liger-kernel==0.8.5 regex==2026.11.19)

install_wheels() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/gpu.txt"
    fi
    python3 -c "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)" | tee -a "$out/gpu.txt"
}

out="${OUT:-.}"
case "${1:-run}" in
fetch)
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
    ;;
run)
    install_wheels
    # settings that run out of memory fail within their first step (no checkpointing fallback
    # in the benchmark); checkpointing ones run only when nothing without it fits (it was always
    # slower in DESIGN.md's table). About 13 training runs per shape: inside the 600 s of a call
    if [ $# -gt 0 ]; then shift; fi
    if [ $# -eq 0 ]; then
        set -- --shapes 1.1b,7b --steps 15 --warmup 3 --repeats 2 \
            --plain 8:off,4:off,8:on,4:on --ours 16384:off,8192:off,8192:on
    fi
    PYTHONUNBUFFERED=1 python3 benchmarks/trainer_throughput.py "$@" --out "$out/throughput.json" 2>&1 |
        tee "$out/throughput.log"
    ;;
trial)
    install_wheels
    if [ $# -gt 0 ]; then shift; fi
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_trial.py --out "$out" --work /tmp/gpu-trial "$@" 2>&1 |
        tee "$out/gpu_trial.log"
    ;;
*)
    echo "usage: $0 fetch|run|trial" >&2
    exit 2
    ;;
esac
