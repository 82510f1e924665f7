"""Encoding, training and scoring of one trial on the tiny offline model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from paths_for_tests import REPO

from ablate.mixture import Mixture
from ablate.trial.encode import IGNORE, DialogueEncoder


@pytest.fixture(scope="module")
def loaded(tiny_world: dict[str, Path]) -> Any:
    from ablate.models import load_model

    return load_model(tiny_world["model"])


def _bench(tiny_world: dict[str, Path]) -> list[dict]:
    from ablate.bench import bench_records, load_bench

    return bench_records(load_bench(tiny_world["bench"]))


def test_labels_cover_exactly_the_assistant_turns(loaded: Any, tiny_world: dict[str, Path]) -> None:
    encoder = DialogueEncoder(loaded.processor)
    tok = loaded.processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    for record in _bench(tiny_world)[:24]:
        enc = encoder.encode(record["conversations"], record["images"])
        answers = [t["value"] for t in record["conversations"] if t["from"] == "gpt"]
        assert len(enc.turn_spans) == len(answers)
        for (start, end), answer in zip(enc.turn_spans, answers, strict=True):
            # token by token: the span is the answer, then the template's end-of-turn marker
            assert tok.decode(enc.input_ids[start:end]) == f"{answer}<|end|>\n"
            assert enc.labels[start:end] == enc.input_ids[start:end]
        labelled = {i for s, e in enc.turn_spans for i in range(s, e)}
        assert all(lab == IGNORE for i, lab in enumerate(enc.labels) if i not in labelled)
        assert enc.input_ids.count(image_id) == 17 * len(record["images"])
        assert enc.turn_flags == [
            bool(t["contextual"]) for t in record["conversations"] if t["from"] == "gpt"
        ]


def test_overlong_dialogues_are_cut_at_turn_boundaries(
    loaded: Any, tiny_world: dict[str, Path]
) -> None:
    record = next(r for r in _bench(tiny_world) if len(r["images"]) >= 2)
    full = DialogueEncoder(loaded.processor).encode(record["conversations"], record["images"])
    limit = full.turn_spans[2][1] + 1  # room for 3 turns and one token of the 4th
    cut = DialogueEncoder(loaded.processor, max_length=limit).encode(
        record["conversations"], record["images"]
    )
    assert len(cut.turn_spans) == 3 and cut.truncated_turns == len(full.turn_spans) - 3
    assert cut.input_ids == full.input_ids[: full.turn_spans[2][1]]
    assert len(cut.images) == len(record["images"])  # every image sits in the first question


def test_teacher_forced_exact_match_equals_greedy_generation(
    loaded: Any, tiny_world: dict[str, Path]
) -> None:
    """The one-pass scorer gives the same verdict as decoding each answer greedily."""
    import torch

    from ablate.config import LoraSpec, TrainSpec
    from ablate.trial.encode import PixelCache
    from ablate.trial.evaluate import score_turns
    from ablate.trial.train import attach_lora, train_lora

    encoder = DialogueEncoder(loaded.processor)
    pixels = PixelCache(loaded.processor.image_processor)
    tok = loaded.processor.tokenizer
    train = [json.loads(x) for x in tiny_world["train"].read_text().splitlines()[:160]]
    for r in train:
        images = r.get("image", [])
        r["images"] = [
            str(tiny_world["world"] / p) for p in ([images] if isinstance(images, str) else images)
        ]
    examples = [encoder.encode(r["conversations"], r["images"]) for r in train]
    model = attach_lora(loaded.model, LoraSpec(r=8, alpha=16), seed=0)
    try:
        train_lora(
            model, examples, pixels, tok.pad_token_id, TrainSpec(lr=5e-3, max_steps=40), 0, "cpu"
        )
        bench = [r for r in _bench(tiny_world) if r["skill"] in ("colors", "lists")][:6]
        bench_enc = [encoder.encode(r["conversations"], r["images"]) for r in bench]
        scores, _ = score_turns(
            model, bench_enc, [{}] * len(bench), pixels, tok.pad_token_id, "cpu"
        )
        greedy = []
        end_id = tok.convert_tokens_to_ids("<|end|>")
        model.eval()
        for enc in bench_enc:
            for start, end in enc.turn_spans:
                prompt = torch.tensor([enc.input_ids[:start]])
                images = enc.images_before(start)
                kwargs = {"pixel_values": pixels(images)} if images else {}
                out = model.generate(
                    input_ids=prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=end - start,
                    do_sample=False,
                    eos_token_id=end_id,
                    **kwargs,
                )[0, start:].tolist()
                want = enc.input_ids[start:end]  # answer, <|end|>, "\n"
                # generation stops at <|end|>; the newline after it is the template's, never sampled
                greedy.append(out[: len(want) - 1] == want[:-1])
    finally:
        model.unload()
    assert [s.correct for s in scores] == greedy
    assert 0 < sum(greedy) < len(greedy)  # a partly trained model: both verdicts occur


def test_trial_numbers_reuse_and_base_untouched(train_job: Any) -> None:
    import torch

    from ablate.trial import run_trial

    job = train_job()
    mix = Mixture(
        name="m", volume=48, proportions={"colors": 0.5, "lists": 0.5}, taxonomy="skill", seed=3
    )
    cache: dict[Any, Any] = {}
    first = run_trial(job, mix, cache)
    (base,) = [v for k, v in cache.items() if k[0] == "model"]
    (adapter,) = [v["adapter"][2] for k, v in cache.items() if k[0] == "adapter"]

    def base_weights() -> dict[str, Any]:  # the frozen base, not the adapter kept on it
        return {k: v.clone() for k, v in base.model.state_dict().items() if "lora_" not in k}

    before = base_weights()
    again = run_trial(job, mix, cache)  # resident base model, its adapter redrawn in place
    assert cache[("adapter",)]["adapter"][2] is adapter  # reused, not rebuilt
    cold = run_trial(job, mix, {})
    after = base_weights()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert first.counts == {"colors": 24, "lists": 24} and len(first.row_ids) == 48
    assert first.selection_hash == again.selection_hash == cold.selection_hash
    for key, value in first.metrics.items():
        assert again.metrics[key] == pytest.approx(value, abs=1e-6), key
        assert cold.metrics[key] == pytest.approx(value, abs=1e-5), key
    m = first.metrics
    assert 0.0 <= m["overall_accuracy"] <= 1.0 and 0.0 <= m["contextual_accuracy"] <= 1.0
    assert {"accuracy/skill=colors", "accuracy/science", "bench_loss", "train_loss"} <= set(m)
    assert (
        first.info["steps"] == 6 and first.info["bench_turns"] == 160
    )  # 48 rows / batch 8; 32 dialogues
    # the loss at each logging step (6 steps: every step), MLflow's loss chart
    curve = first.info["loss_curve"]
    assert [step for step, _ in curve] == [1, 2, 3, 4, 5, 6] and all(loss > 0 for _, loss in curve)
    assert m["train_loss"] == pytest.approx(sum(loss for _, loss in curve) / 6, rel=1e-3)


@pytest.mark.slow
def test_the_mixture_decides_what_is_learned(train_job: Any) -> None:
    """Training only on `lists` teaches lists, not colours; and the other way round."""
    from ablate.trial import run_trial

    job = train_job(train={"epochs": 3})
    results = {}
    for skill in ("lists", "colors"):
        mix = Mixture(name=skill, volume=80, proportions={skill: 1.0}, taxonomy="skill", seed=0)
        results[skill] = run_trial(job, mix).metrics
    assert (
        results["lists"]["accuracy/skill=lists"] > results["colors"]["accuracy/skill=lists"] + 0.2
    )
    assert (
        results["colors"]["accuracy/skill=colors"] > results["lists"]["accuracy/skill=colors"] + 0.1
    )


def test_trial_command_prints_one_json_object(train_job: Any, tmp_path: Path, capsys: Any) -> None:
    import yaml

    from ablate.cli import main
    from ablate.config import to_dict

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(train_job())))
    assert main(["trial", str(path), "--json", "--set", "design.volumes=[16]"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    assert result["mixture"] == "v16-b1.00-s0"
    assert sum(result["counts"].values()) == 16
    assert 0 <= result["metrics"]["overall_accuracy"] <= 1 and result["info"]["steps"] == 2
    assert not (tmp_path / "optuna.db").exists()  # a single trial touches no study

    # an inline mixture mixes the job's task types unless it names another taxonomy
    data = to_dict(train_job())
    data["mixture"] = {"proportions": {"colors": 0.5, "lists": 0.5}, "volume": 16}
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["counts"] == {"colors": 8, "lists": 8}
    # one that names its taxonomy keeps it
    data["mixture"] = {"taxonomy": "task_type", "volume": 16,
                       "proportions": {"text_only": 0.5, "single_image": 0.5}}  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["counts"] == {"text_only": 8, "single_image": 8}


def test_gpu_settings_on_a_machine_without_cuda_fall_back_or_are_refused(
    train_job: Any, tmp_path: Path, capsys: Any
) -> None:
    """`train.liger` falls back to off without CUDA (said in `info`); a flash attention asked for
    by name is refused, naming the key and the fix; Liger on CUDA without its package too."""
    import importlib.util

    import yaml

    from ablate.cli import main
    from ablate.config import TrainSpec, to_dict
    from ablate.errors import UserError
    from ablate.trial.train import liger_mode

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(to_dict(train_job(train={"liger": True, "packing": True}))))
    assert main(["trial", str(path), "--json", "--set", "design.volumes=[16]"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["info"]["liger"] == "off: no CUDA device (Liger's Triton kernels need one)"
    assert result["info"]["steps"] >= 1

    data = to_dict(train_job())
    data["model"]["attn_implementation"] = "flash_attention_2"
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path), "--json", "--set", "design.volumes=[16]"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: model.attn_implementation: flash_attention_2 needs a CUDA device" in err
    assert "set `attn_implementation: auto`" in err and "Traceback" not in err

    if importlib.util.find_spec("liger_kernel") is None:
        with pytest.raises(
            UserError, match=r"liger-kernel package is not installed.*'ablate\[gpu\]'"
        ):
            liger_mode(TrainSpec(liger=True), "cuda")
    assert liger_mode(TrainSpec(liger=False), "cuda") == "off"


@pytest.mark.parametrize("packing", [False, True])
def test_intermediate_scores_are_reported_and_can_stop_a_trial(
    train_job: Any, packing: bool
) -> None:
    """`train.eval_every` scores the bench during training: the values the driver prunes on.
    Packed training scores with the model's own attention (padded batches, generation)."""
    from ablate.trial import run_trial

    job = train_job(train={"eval_every": 2, "max_steps": 6, "packing": packing})
    mix = Mixture(name="m", volume=48, proportions={"colors": 0.5, "lists": 0.5}, taxonomy="skill")
    seen: list[tuple[int, float]] = []
    result = run_trial(job, mix, {"report": lambda step, value: seen.append((step, value))})
    assert [step for step, _ in seen] == [2, 4]  # step 6 is the final score, not intermediate
    assert all(0.0 <= value <= 1.0 for _, value in seen)
    assert result.info["steps"] == 6
    assert (result.info["pad_fraction"] == 0.0) == packing

    class Pruned(Exception):
        pass

    def prune(step: int, value: float) -> None:
        raise Pruned(f"pruned at step {step}")

    with pytest.raises(Pruned, match="step 2"):
        run_trial(job, mix, {"report": prune})


def test_a_resident_adapter_is_redrawn_like_a_fresh_one_and_swapped_on_a_new_recipe() -> None:
    import sys

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from trainer_throughput import SHAPES, build_model

    from ablate.config import LoraSpec
    from ablate.trial.train import attach_lora, resident_adapter

    model = build_model(SHAPES["tiny"], "cpu", "sdpa")
    slot: dict[str, Any] = {}
    first = resident_adapter(slot, model, LoraSpec(r=8, alpha=16), seed=5)
    with torch.no_grad():
        for p in first.parameters():
            if p.requires_grad:
                p.add_(1.0)  # as if trained
    again = resident_adapter(slot, model, LoraSpec(r=8, alpha=16), seed=5)
    assert again is first
    redrawn = {k: v.clone() for k, v in again.state_dict().items() if "lora_" in k}
    again.unload()
    fresh = attach_lora(model, LoraSpec(r=8, alpha=16), seed=5)
    drawn = {k: v for k, v in fresh.state_dict().items() if "lora_" in k}
    assert redrawn.keys() == drawn.keys() and all(torch.equal(redrawn[k], drawn[k]) for k in drawn)
    # and both are what peft itself creates under the seed (trials of older versions keep theirs)
    fresh.unload()
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(5)
    created = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    by_peft = {k: v for k, v in created.state_dict().items() if "lora_" in k}
    assert by_peft.keys() == drawn.keys() and all(torch.equal(by_peft[k], drawn[k]) for k in drawn)
    created.unload()
    fresh = attach_lora(model, LoraSpec(r=8, alpha=16), seed=5)
    slot["adapter"] = (model, LoraSpec(r=8, alpha=16), fresh)
    other = resident_adapter(slot, model, LoraSpec(r=4, alpha=8), seed=5)  # a new recipe
    ranks = {m.r["default"] for m in other.modules() if hasattr(m, "lora_A") and m.lora_A}
    assert ranks == {4}


def test_dialogues_too_long_to_learn_from_are_counted_and_a_lopsided_loss_fails_the_trial(
    train_job: Any,
) -> None:
    """At max_length 40 every multi-image dialogue's first answer ends beyond the limit (they
    end at token 60 or later; single-image ones by 35): none is dropped silently, and a trial
    that would train on single_image alone, when half multi_image was asked for, fails."""
    from ablate.errors import UserError
    from ablate.trial import run_trial

    mix = Mixture(
        name="m",
        volume=16,
        proportions={"single_image": 0.5, "multi_image": 0.5},
        taxonomy="task_type",
        seed=0,
    )
    cache: dict[Any, Any] = {}
    with pytest.raises(UserError) as err:
        run_trial(train_job(train={"max_length": 40}), mix, cache)
    message = str(err.value)
    assert "8 of 8 `multi_image`" in message and "8 too_long" in message
    assert "beyond train.max_length (40 tokens)" in message
    assert "--set train.max_skipped=1" in message
    assert "Raise `train.max_length`, or allow it" in message  # the advice fits the cause

    allowed = run_trial(train_job(train={"max_length": 40, "max_skipped": 1.0}), mix, cache)
    info = allowed.info
    assert info["skipped/too_long"] == 8 and info["skipped_dialogues"] == 8
    assert info["train_dialogues"] + info["skipped_dialogues"] == 16  # every selected row
