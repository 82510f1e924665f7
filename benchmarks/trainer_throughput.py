"""Trainer throughput: ablate's trainer against the plain transformers Trainer + peft, one run.

    # on one GPU (H100): both Llama shapes of DESIGN.md, random weights, nothing to download
    # (benchmarks/README.md has the command for the lent GPU machine, which has no network)
    python benchmarks/trainer_throughput.py --shapes 1.1b,7b --out throughput.json
    # anywhere (CI): tiny shapes on the CPU, same code path
    python benchmarks/trainer_throughput.py --tiny --out throughput.json

Recipe (DESIGN.md's table): LoRA r=128, alpha=256 on all linear layers, bf16 + sdpa on CUDA,
dialogues of 4-8 turns up to 2048 tokens (mean about 1,100), loss on assistant tokens. Reported:
real (non-pad) tokens per second of each side and their ratio, padding share, MFU
(4 x parameters FLOPs per token: forward 2N + input-gradient backward 2N, frozen base), and the
time to switch trials on a resident worker (the adapter redrawn in place, then the first step)
against a cold start (load from disk + adapter + first step).

Baseline: the plain Trainer, random order, padded batches; each batch size / checkpointing
setting of `--plain` that fits is tried and the best kept. Ablate's side:
`ablate.trial.train.train_lora` with `train.packing` (padding-free rows of `pack_tokens` tokens,
varlen attention, the LM head only on labelled positions), Liger kernels when installed
(`pip install 'ablate[gpu]'`); each row budget / checkpointing setting of `--ours` that fits is
tried and the best kept. The two sides then alternate, after a warm-up, so drift on a noisy
machine hits both.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHAPES = {
    # TinyLlama-1.1B and Llama-2-7B shapes
    "1.1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "vocab_size": 32000},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000},
    # a CPU-sized proxy (a few seconds per step on 2 cores at the full 2,048-token recipe)
    "small": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 8000},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 512},
}  # fmt: skip


@dataclass(frozen=True)
class Setting:
    size: int
    """Plain: rows per batch; ablate: tokens per packed row."""
    checkpointing: bool

    @staticmethod
    def parse(text: str) -> list[Setting]:
        """`8:off,4:on` -> settings (size:checkpointing)."""
        out = []
        for part in text.split(","):
            size, _, ckpt = part.partition(":")
            out.append(Setting(int(size), ckpt.strip() == "on"))
        return out


def synthetic_dialogues(n: int, max_len: int, vocab: int, seed: int) -> list[Any]:
    """Encoded dialogues of 4-8 turns: questions of 20-400 tokens, answers of 20-300 (scaled to
    max_len), labels on the answers; a dialogue stops before a pair that would pass max_len."""
    import numpy as np

    from ablate.trial.encode import IGNORE, Encoded

    rng = np.random.default_rng(seed)
    scale = max_len / 2048
    out = []
    for _ in range(n):
        ids: list[int] = []
        labels: list[int] = []
        spans = []
        for _exchange in range(int(rng.integers(2, 5))):  # 4-8 turns = 2-4 question/answer pairs
            q = max(2, int(rng.integers(20, 400) * scale))
            a = max(2, int(rng.integers(20, 300) * scale))
            if len(ids) + q + a > max_len:
                break
            ids += rng.integers(3, vocab, q).tolist()
            labels += [IGNORE] * q
            answer = rng.integers(3, vocab, a).tolist()
            spans.append((len(ids), len(ids) + a))
            ids += answer
            labels += answer
        out.append(Encoded(input_ids=ids, labels=labels, turn_spans=spans, images=[]))
    return out


def padding_share(lengths: list[int], batch_size: int, grouped: bool, seed: int) -> float:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from ablate.trial.train import length_batches_padding

    g = torch.Generator().manual_seed(seed)
    if grouped:
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=g))
    else:
        order = torch.randperm(len(lengths), generator=g).tolist()
    return length_batches_padding(lengths, batch_size, order)


def build_model(shape: dict[str, int], device: str, attn: str, bf16: bool | None = None) -> Any:
    """A random-weight Llama of `shape` (bf16 on CUDA, fp32 on CPU unless `bf16`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**shape, max_position_embeddings=4096, pad_token_id=0)
    dtype = torch.bfloat16 if (device == "cuda" if bf16 is None else bf16) else torch.float32
    with torch.device(device):
        return LlamaForCausalLM._from_config(config, attn_implementation=attn, dtype=dtype)


class Timer:
    """A TrainerCallback timing the steps after the first `skip` (kernel warm-up)."""

    def __init__(self, skip: int) -> None:
        self.skip = skip
        self.start = 0.0
        self.end = 0.0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        _sync()
        if state.global_step == self.skip:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_plain(
    model: Any,
    data: list[Any],
    setting: Setting,
    steps: int,
    skip: int,
    device: str,
    liger: bool = False,
) -> dict:
    """The plain transformers Trainer + peft: random order, batches padded to their longest
    (`use_liger_kernel=True` when `liger`)."""
    from peft import LoraConfig, get_peft_model
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from ablate.trial.encode import collate
    from ablate.trial.train import checkpointing_off

    peft_model = get_peft_model(
        model, LoraConfig(r=128, lora_alpha=256, target_modules="all-linear")
    )
    batches: list[tuple[int, int]] = []  # (real, all) positions of each collated batch
    timer = Timer(skip)

    def collator(batch: list[Any]) -> dict:
        out = collate(batch, None, 0)
        batches.append((int(out["attention_mask"].sum()), out["attention_mask"].numel()))
        return out

    _reset_peak()
    try:
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out, per_device_train_batch_size=setting.size, max_steps=steps,
                learning_rate=1e-4, bf16=device == "cuda", use_cpu=device == "cpu",
                activation_checkpointing=setting.checkpointing, save_strategy="no", report_to=[],
                remove_unused_columns=False, disable_tqdm=True, logging_steps=10_000, seed=0,
                use_liger_kernel=liger,
            )  # fmt: skip
            trainer = Trainer(model=peft_model, args=args, train_dataset=data,  # type: ignore[arg-type]
                              data_collator=collator, callbacks=[timer])  # fmt: skip
            trainer.remove_callback(PrinterCallback)
            trainer.train()
    finally:
        # the Trainer leaves checkpointing on: the next setting on this model must not inherit it
        checkpointing_off(peft_model.get_base_model())
        peft_model.unload()
    # the data loader collates a batch ahead: count the timed steps' batches only
    timed = batches[skip:steps]
    real = sum(r for r, _ in timed)
    return {
        "tokens_per_s": real / (timer.end - timer.start),
        "pad_share": 1 - real / sum(n for _, n in timed),
        "peak_gib": _peak_gib(),
    }


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def run_ablate(
    model: Any,
    data: list[Any],
    setting: Setting,
    steps: int,
    skip: int,
    device: str,
    liger: bool = False,
) -> dict:
    """ablate's trainer: packed rows of `setting.size` tokens (Liger kernels when `liger`)."""
    from ablate.config import LoraSpec, TrainSpec
    from ablate.trial.train import attach_lora, train_lora

    spec = TrainSpec(
        lr=1e-4, max_steps=steps, packing=True, pack_tokens=setting.size, liger=liger,
        gradient_checkpointing=setting.checkpointing,
    )  # fmt: skip
    timer = Timer(skip)
    peft_model = attach_lora(model, LoraSpec(r=128, alpha=256), seed=0)
    _reset_peak()
    try:
        # no fallback: a setting that runs out of memory fails at once, not after a rerun
        stats = train_lora(
            peft_model, data, None, 0, spec, 0, device, callbacks=[timer], fallback=False
        )
    finally:
        peft_model.unload()
    # real tokens of the timed steps (one packed row per step: no gradient accumulation)
    real = sum(stats.batch_tokens[skip:steps])
    return {
        "tokens_per_s": real / (timer.end - timer.start),
        "pad_share": stats.pad_fraction,
        "liger": liger,
        "peak_gib": _peak_gib(),
    }


def fits(run: Any, setting: Setting) -> dict | None:
    """`run(setting)`'s result, or None when it runs out of GPU memory."""
    import torch

    result = None
    with contextlib.suppress(torch.OutOfMemoryError):
        result = run(setting)
    free_memory()  # the failed step's tensors die with its frames
    return result


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def best_setting(run: Any, candidates: list[Setting]) -> tuple[Setting, list[dict]]:
    """The fastest candidate that fits in memory (an out-of-memory one is skipped).

    Checkpointing settings are tried only when no setting without it fits: recomputing the
    activations was always slower when both fit (DESIGN.md's table), and skipping them keeps
    the run inside the device's time limit.
    """
    results: dict[Setting, dict] = {}
    for s in candidates:
        if s.checkpointing and any(not fit.checkpointing for fit in results):
            continue
        if (result := fits(run, s)) is not None:
            results[s] = result
    if not results:
        raise SystemExit(f"no setting of {candidates} fits in memory")
    best = max(results, key=lambda s: results[s]["tokens_per_s"])
    return best, [results[best]]


def switch_times(shape: dict[str, int], device: str, attn: str, max_len: int) -> dict:
    """A resident worker's trial switch (the adapter redrawn in place; then the first step on
    4 dialogues of up to `max_len` tokens) against a cold start (load from disk + adapter +
    first step), through ablate's trial code."""
    from ablate.config import LoraSpec, ModelSpec, TrainSpec
    from ablate.models import load_model
    from ablate.testing import build_tiny_causal_lm
    from ablate.trial.train import resident_adapter, train_lora

    spec = TrainSpec(batch_size=4, max_steps=1)
    lora = LoraSpec(r=128, alpha=256)
    data = synthetic_dialogues(4, max_len, shape["vocab_size"], seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        # a saved checkpoint of the shape (the tokenizer/template come from the tiny builder)
        folder = build_tiny_causal_lm(Path(tmp) / "m", ["hello world"] * 4)
        build_model(shape, "cpu", attn, bf16=device == "cuda").save_pretrained(folder)
        model_spec = ModelSpec(path=str(folder), attn_implementation=attn)

        t = time.perf_counter()
        loaded = load_model(folder, device=device, spec=model_spec)
        slot: dict[str, Any] = {}
        train_lora(resident_adapter(slot, loaded.model, lora, 0), data, None, 0, spec, 0, device)
        _sync()
        cold = time.perf_counter() - t
        switch, trial = [], []
        for seed in (1, 2, 3):
            t = time.perf_counter()
            peft_model = resident_adapter(slot, loaded.model, lora, seed)
            _sync()
            switch.append(time.perf_counter() - t)
            train_lora(peft_model, data, None, 0, spec, seed, device)
            _sync()
            trial.append(time.perf_counter() - t)
        del loaded, slot
    return {"cold_s": cold, "switch_s": min(switch), "resident_s": min(trial)}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (CI)")
    ap.add_argument("--shapes", default="1.1b,7b", help="comma-separated: 1.1b, 7b, small")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per measurement")
    ap.add_argument("--warmup", type=int, default=5, help="untimed first steps of each run")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each side")
    ap.add_argument(
        "--plain",
        default="8:off,4:off,8:on,4:on",
        help="plain Trainer settings to try, batch:checkpointing",
    )
    ap.add_argument(
        "--ours",
        default="16384:off,12288:off,8192:off,6144:off,8192:on",
        help="ablate settings to try, tokens per packed row:checkpointing",
    )
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="H100 SXM dense bf16")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument(
        "--switch-only",
        action="store_true",
        help="only the trial switch against the cold start, on dialogues of 16-64 tokens "
        "(the 1.1B shape's switch on a CPU, where its throughput runs would take hours)",
    )
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    shapes = ["tiny"] if args.tiny else args.shapes.split(",")
    max_len = 256 if args.tiny else 2048
    steps, warmup = (6, 2) if args.tiny else (args.steps, args.warmup)
    repeats = 1 if args.tiny else args.repeats
    import importlib.util

    liger = device == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    attn = "sdpa"
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        attn = "flash_attention_2"
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "attn_implementation": attn,
        "shapes": {},
    }
    # padding share of the length distribution itself (no model): random vs grouped batches
    lengths = [len(e.input_ids) for e in synthetic_dialogues(4000, 2048, 32000, seed=1)]
    results["length_mean"] = sum(lengths) / len(lengths)
    results["pad_share_random_b8"] = padding_share(lengths, 8, grouped=False, seed=0)
    results["pad_share_grouped_b8"] = padding_share(lengths, 8, grouped=True, seed=0)

    if args.switch_only:
        for name in shapes:
            shape = SHAPES[name]
            results["shapes"][name] = switch_times(shape, device, attn, 64)
            print(f"{name}: switch {results['shapes'][name]['switch_s']:.3f} s, with the first "
                  f"step {results['shapes'][name]['resident_s']:.2f} s, cold start "
                  f"{results['shapes'][name]['cold_s']:.2f} s", flush=True)  # fmt: skip
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
        return

    def write() -> None:  # after each phase of each shape: a run cut short keeps what it has
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))

    def runners(name: str) -> tuple[Any, Any, int]:
        shape = SHAPES[name]
        model = build_model(shape, device, attn)
        data = synthetic_dialogues(max(64, 8 * steps), max_len, shape["vocab_size"], seed=0)
        common = {"steps": steps, "skip": warmup, "device": device}
        n_params = sum(p.numel() for p in model.parameters())
        return (functools.partial(run_plain, model, data, **common),
                functools.partial(run_ablate, model, data, **common), n_params)  # fmt: skip

    def mfu(tokens_per_s: float, n_params: int) -> float:
        return tokens_per_s * 4 * n_params / (args.peak_tflops * 1e12)  # 4N FLOPs per token

    chosen: dict[str, tuple[Setting, Setting]] = {}  # per shape: the plain and ablate settings
    for name in shapes:  # Liger patches transformers' Llama classes for the whole process:
        # every run without it comes first, for every shape
        plain_run, ours_run, n_params = runners(name)
        plain_candidates = [Setting(2, False)] if args.tiny else Setting.parse(args.plain)
        ours_candidates = [Setting(512, False)] if args.tiny else Setting.parse(args.ours)
        best, plain_runs = best_setting(plain_run, plain_candidates)  # in its favour
        ours_best, ours_runs = best_setting(ours_run, ours_candidates)
        for _ in range(repeats):  # alternate the two sides
            for runs, run, setting in ((ours_runs, ours_run, ours_best),
                                       (plain_runs, plain_run, best)):  # fmt: skip
                if (result := fits(run, setting)) is not None:
                    runs.append(result)
        plain = max(r["tokens_per_s"] for r in plain_runs)
        ours = max(r["tokens_per_s"] for r in ours_runs)
        entry = {
            "params": n_params,
            "plain_best_setting": {"batch_size": best.size, "checkpointing": best.checkpointing},
            "ablate_best_setting": {
                "pack_tokens": ours_best.size,
                "checkpointing": ours_best.checkpointing,
            },
            "plain_tokens_per_s": plain,
            "ablate_tokens_per_s": ours,
            # the best settings' runs, in order
            "plain_runs_tokens_per_s": [r["tokens_per_s"] for r in plain_runs],
            "ablate_runs_tokens_per_s": [r["tokens_per_s"] for r in ours_runs],
            "speedup": ours / plain,
            "ablate_pad_share": ours_runs[-1]["pad_share"],
            "plain_pad_share": plain_runs[-1]["pad_share"],
            "plain_peak_gib": max(r["peak_gib"] for r in plain_runs),
            "ablate_peak_gib": max(r["peak_gib"] for r in ours_runs),
            "liger": False,
            "mfu_plain": mfu(plain, n_params),
            "mfu_ablate": mfu(ours, n_params),
        }
        results["shapes"][name] = entry
        chosen[name] = best, ours_best
        del plain_run, ours_run  # they hold the model
        free_memory()
        if name in ("1.1b", "tiny"):  # the switch target is for the 1.1B shape
            entry.update(switch_times(SHAPES[name], device, attn, max_len))
        write()
    for name in shapes if liger else ():
        # ablate with Liger (its RMSNorm, SwiGLU and RoPE; the head on labelled tokens) against
        # the plain baseline above, and the plain Trainer with `use_liger_kernel=True`
        # (DESIGN.md's 1.16x / 1.6x switch) for scale
        entry = results["shapes"][name]
        plain_run, ours_run, n_params = runners(name)
        best, ours_best = chosen[name]
        try:
            with_liger = [
                r
                for _ in range(repeats)
                if (r := fits(functools.partial(ours_run, liger=True), ours_best))
            ]
            plain_liger = fits(functools.partial(plain_run, liger=True), best)
        except Exception as err:  # a Liger release that does not fit this transformers
            entry["liger_error"] = repr(err)[:500]
            with_liger, plain_liger = [], None
        del plain_run, ours_run
        free_memory()
        if plain_liger is not None:
            entry["plain_liger_tokens_per_s"] = plain_liger["tokens_per_s"]
        if with_liger:
            best_liger = max(r["tokens_per_s"] for r in with_liger)
            ours = max(entry["ablate_tokens_per_s"], best_liger)
            entry.update(
                liger=True,
                ablate_no_liger_tokens_per_s=entry["ablate_tokens_per_s"],
                ablate_liger_runs_tokens_per_s=[r["tokens_per_s"] for r in with_liger],
                ablate_liger_peak_gib=max(r["peak_gib"] for r in with_liger),
                ablate_tokens_per_s=ours,
                speedup=ours / entry["plain_tokens_per_s"],
                mfu_ablate=mfu(ours, n_params),
            )
        write()
    print(json.dumps(results, indent=2))
    print(f"\npadding share at batch 8: random {results['pad_share_random_b8']:.3f}, "
          f"length-grouped {results['pad_share_grouped_b8']:.3f}")  # fmt: skip
    for name, e in results["shapes"].items():
        line = (f"{name}: plain {e['plain_tokens_per_s']:,.0f} tok/s, ablate "
                f"{e['ablate_tokens_per_s']:,.0f} tok/s, x{e['speedup']:.2f}, "
                f"MFU {e['mfu_plain']:.1%} -> {e['mfu_ablate']:.1%}")  # fmt: skip
        if "cold_s" in e:
            line += (f"; switch {e['switch_s']:.3f} s (with the first step {e['resident_s']:.2f} s)"
                     f" vs cold start {e['cold_s']:.2f} s")  # fmt: skip
        print(line)


if __name__ == "__main__":
    main()
