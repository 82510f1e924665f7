"""Benchmarks as data: shipped bench files, the four scorers, held-out loss, checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths_for_tests import REPO

from ablate.bench import bench_records, load_bench
from ablate.mixture import Mixture

BENCHES = sorted((REPO / "benches").glob("*.yaml"))


@pytest.mark.parametrize("path", BENCHES, ids=[p.stem for p in BENCHES])
def test_every_shipped_bench_loads_with_its_data(path: Path) -> None:
    spec = load_bench(path)
    records = bench_records(spec)
    assert records and all(Path(p).is_file() for r in records for p in r["images"])
    for r in records:
        assert r[spec.domain_field] and r["n_history"] == len(
            [t for t in r["conversations"]][: r["n_history"]]
        )
    assert spec.subtopic_field == "subtopic" and {r["subtopic"] for r in records}


def test_mmcr_layout_history_is_context_only(tiny_world: dict[str, Path]) -> None:
    from ablate.models import load_model
    from ablate.trial.encode import DialogueEncoder

    (mmcr,) = [p for p in BENCHES if p.stem == "mmcr"]
    records = bench_records(load_bench(mmcr))
    first = records[0]
    assert first["n_history"] == 2 and len(first["conversations"]) == 6
    loaded = load_model(tiny_world["model"])
    enc = DialogueEncoder(loaded.processor).encode(
        first["conversations"], first["images"], history=first["n_history"]
    )
    tok = loaded.processor.tokenizer
    assert [tok.decode(enc.input_ids[s:e]) for s, e in enc.turn_spans] == [
        "In the top left corner.<|end|>\n",
        "Dark blue.<|end|>\n",
    ]
    assert enc.turn_flags == [True, True]


def _write_bench(tmp: Path, tiny_world: dict[str, Path], scorer: str, **extra: Any) -> Path:
    data = tmp / f"{scorer}.jsonl"
    lines = tiny_world["bench"].parent.joinpath("bench.jsonl").read_text().splitlines()[::3]
    with data.open("w") as f:
        for line in lines:
            r = json.loads(line)
            images = r.get("image") or []
            images = [images] if isinstance(images, str) else images
            r["image"] = [str(tiny_world["world"] / p) for p in images]
            if scorer == "choice":
                for t in r["conversations"]:
                    if t["from"] == "gpt":
                        t["choices"] = sorted({t["value"], "red", "blue", "two"})
            f.write(json.dumps(r) + "\n")
    path = tmp / f"{scorer}.yaml"
    spec = {"name": f"w-{scorer}", "data": str(data), "scorer": scorer, "group_fields": ["skill"]}
    path.write_text(yaml.safe_dump({**spec, **extra}))
    return path


@pytest.fixture(scope="module")
def trained(tiny_world: dict[str, Path]) -> Any:
    """The tiny Llava with an adapter trained for 30 steps (partly right, partly wrong)."""
    from ablate.config import LoraSpec, TrainSpec
    from ablate.models import load_model
    from ablate.trial.encode import DialogueEncoder, PixelCache
    from ablate.trial.train import attach_lora, train_lora

    loaded = load_model(tiny_world["model"])
    encoder = DialogueEncoder(loaded.processor)
    pixels = PixelCache(loaded.processor.image_processor)
    rows = [json.loads(x) for x in tiny_world["train"].read_text().splitlines()[:160]]
    examples = []
    for r in rows:
        images = r.get("image") or []
        images = [images] if isinstance(images, str) else images
        examples.append(
            encoder.encode(r["conversations"], [str(tiny_world["world"] / p) for p in images])
        )
    model = attach_lora(loaded.model, LoraSpec(r=8, alpha=16), seed=0)
    train_lora(model, examples, pixels, 0, TrainSpec(lr=5e-3, max_steps=30), 0, "cpu")
    yield model, loaded, encoder, pixels
    model.unload()


def test_scorers_agree_with_each_other_and_the_judge(
    trained: Any, tiny_world: dict[str, Path], tmp_path: Path, judge_server: Any
) -> None:
    import torch

    from ablate.trial.evaluate import choice_scores
    from ablate.trial.scoring import _encode_bench, score_bench

    model, loaded, encoder, pixels = trained
    pad = loaded.tokenizer.pad_token_id
    results = {}
    cache: dict[Any, Any] = {}
    for scorer in ("exact", "normalized", "choice"):
        bench = _write_bench(tmp_path, tiny_world, scorer, max_new_tokens=6)
        results[scorer] = score_bench(model, bench, encoder, pixels, loaded, pad, cache, "m")
    exact, normalized, choice = (results[s][0] for s in ("exact", "normalized", "choice"))
    assert exact["bench_loss"] == pytest.approx(normalized["bench_loss"])
    assert 0 < exact["overall_accuracy"] < 1
    # greedy decoding that reproduces the answer and stops is also a normalised match
    assert normalized["overall_accuracy"] >= exact["overall_accuracy"]
    assert choice["overall_accuracy"] >= exact["overall_accuracy"] - 1e-9
    assert {"accuracy/skill=colors", "accuracy/skill=lists"} <= set(choice)

    # choice: the log-likelihood of one option, by hand, equals the scorer's
    bench = _encode_bench(_write_bench(tmp_path, tiny_world, "choice"), encoder)
    options, ref = bench.extra[0]
    enc, start, end = options[1]
    with torch.no_grad():
        batch = {"input_ids": torch.tensor([enc.input_ids])}
        if enc.images:
            batch["pixel_values"] = pixels(enc.images)
        logp = torch.log_softmax(model(**batch).logits.float(), -1)[0]
    by_hand = sum(float(logp[t - 1, enc.input_ids[t]]) for t in range(start, end))
    assert choice_scores(model, [options[1]], pixels, pad, "cpu")[0] == pytest.approx(
        by_hand, abs=1e-4
    )
    assert ref == bench.records[0]["conversations"][1]["choices"].index(
        bench.records[0]["conversations"][1]["value"]
    )

    # judge: every generated answer goes to the loopback judge, identity logged per score
    bench = _write_bench(
        tmp_path,
        tiny_world,
        "judge",
        max_new_tokens=6,
        judge={"url": judge_server.url, "model": "judge-x", "cache": str(tmp_path / "j.sqlite")},
    )
    metrics, info = score_bench(model, bench, encoder, pixels, loaded, pad, cache, "m")
    turns = info["bench_turns"]
    assert len(judge_server.seen) == turns == len(info["judge_records"])
    assert metrics["judge_unscored"] == 0 and 0 <= metrics["judge_score"] <= 1
    assert all(r["judge"]["model"] == "judge-x" for r in info["judge_records"])
    # the server rates an empty answer 2 on both context dimensions, any other 5
    empty = sum(not r["answer"] for r in info["judge_records"])
    assert metrics["contextual_accuracy"] == pytest.approx(1 - empty / turns)
    assert metrics["judge_requests"] == turns and metrics["judge_completion_tokens"] == 7 * turns
    assert info["judge"]["model"] == "judge-x" and info["judge"]["output"] == "json_schema"
    again, info2 = score_bench(model, bench, encoder, pixels, loaded, pad, cache, "m")
    assert again["judge_requests"] == 0 and info2["judge_cache_hits"] == turns
    assert again["judge_cache_hit_rate"] == 1.0
    cost = {"judge_requests", "judge_prompt_tokens", "judge_completion_tokens"}
    cost.add("judge_cache_hit_rate")
    assert {k: v for k, v in again.items() if k not in cost} == {
        k: v for k, v in metrics.items() if k not in cost
    }


def test_heldout_loss_per_task_type_and_rows_kept_out(train_job: Any) -> None:
    from ablate.trial import heldout_positions, run_trial

    job = train_job(bench={"heldout_of_pool": 0.05}, train={"max_steps": 3, "batch_size": 8})
    mix = Mixture(name="m", volume=120, proportions={"colors": 0.5, "lists": 0.5}, taxonomy="skill")
    cache: dict[Any, Any] = {}
    result = run_trial(job, mix, cache)
    m = result.metrics
    assert {f"heldout_loss/{s}" for s in ("colors", "layout", "compare", "lists")} <= set(m)
    assert "overall_accuracy" not in m  # no bench file: loss only
    (pool,) = [v for k, v in cache.items() if k[0] == "pool"]
    held = heldout_positions(pool, "skill", 0.05, job.seed)
    held_ids = set(
        pool.table().column("id").take(sorted(int(p) for v in held.values() for p in v)).to_pylist()
    )
    per_skill = pool.manifest.labels["skill"]
    assert len(held_ids) == sum(round(0.05 * n) for n in per_skill.values())  # 5% per skill
    assert not held_ids & set(result.row_ids)
    # the held-out rows left the pool before the draw: the full volume at the asked shares
    # (before: drawn first, then removed, 120 rows became 113-ish at shares off by a seed)
    assert len(result.row_ids) == len(set(result.row_ids)) == 120
    assert result.counts == {"colors": 60, "lists": 60}
    assert result.info["heldout_rows"] == len(held_ids)
    losses = [m[f"heldout_loss/{s}"] for s in ("colors", "layout", "compare", "lists")]
    assert min(losses) <= m["heldout_loss"] <= max(losses)


def test_a_retried_trial_resumes_from_its_checkpoint(train_job: Any, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    from ablate.trial import run_trial
    from ablate.trial.checkpoints import forget_checkpoint

    class Crash(TrainerCallback):  # the worker dies after step 3
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 3:
                raise RuntimeError("worker lost")

    ckpt = tmp_path / "ckpt"
    job = train_job(train={"max_steps": 6, "checkpoint_dir": str(ckpt), "checkpoint_every": 2})
    mix = Mixture(name="m", volume=48, proportions={"colors": 0.5, "lists": 0.5}, taxonomy="skill")
    cache: dict[Any, Any] = {}
    clean = run_trial(job, mix, cache)
    assert clean.info["resumed_from_step"] == 0
    # kept for whoever records the result (a sweep's worker, `ablate trial`) to remove
    kept = Path(clean.info["checkpoint_folder"])
    assert kept.parent == ckpt and (kept / "checkpoint-6" / "trainer_state.json").is_file()
    forget_checkpoint(str(kept))
    assert not any(ckpt.iterdir())
    with pytest.raises(RuntimeError, match="worker lost"):
        run_trial(job, mix, cache, callbacks=[Crash()])
    (folder,) = ckpt.iterdir()
    assert folder.name.startswith(clean.selection_hash[:16] + "-s0-")
    assert [p.name for p in folder.iterdir() if p.name.startswith("checkpoint-")] == [
        "checkpoint-2"
    ]
    # a worker killed while it saved steps 4 and 6: one without its trainer_state.json (written
    # last) and an empty optimizer, one whose trainer_state.json was cut short. Before, the
    # retry took checkpoint-6 (the highest) and failed on it every time.
    for step, torn in ((4, "missing"), (6, "cut")):
        shutil.copytree(folder / "checkpoint-2", folder / f"checkpoint-{step}")
        state = folder / f"checkpoint-{step}" / "trainer_state.json"
        if torn == "missing":
            state.unlink()
            (folder / f"checkpoint-{step}" / "optimizer.pt").write_bytes(b"")
        else:
            state.write_text(state.read_text()[:40])
    resumed = run_trial(job, mix, cache)
    assert resumed.info["resumed_from_step"] == 2 and resumed.info["checkpoint_folder"] == str(
        folder
    )
    for key in ("overall_accuracy", "bench_loss"):
        assert resumed.metrics[key] == pytest.approx(clean.metrics[key], abs=1e-5), key


def test_trial_command_runs_the_jobs_inline_mixture(
    train_job: Any, tmp_path: Path, capsys: Any
) -> None:
    from ablate.cli import main
    from ablate.config import to_dict

    data = to_dict(train_job(train={"max_steps": 2}))
    data["mixture"] = {
        "name": "inline",
        "volume": 24,
        "proportions": {"colors": 0.5, "lists": 0.5},
        "taxonomy": "skill",
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mixture"] == "inline" and result["counts"] == {"colors": 12, "lists": 12}
    assert result["info"]["skipped_dialogues"] == 0 and "pad_fraction" in result["info"]
    data["mixture"]["proportions"] = {"colors": 0.7, "lists": 0.7}
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path)]) == 2
    assert "(`mixture`)" in capsys.readouterr().err


def test_a_judged_bench_fails_loudly_and_keeps_unreadable_replies(
    trained: Any,
    tiny_world: dict[str, Path],
    tmp_path: Path,
    judge_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ablate.bench.judge import JudgeUnavailable
    from ablate.trial.scoring import score_bench

    model, loaded, encoder, pixels = trained
    pad = loaded.tokenizer.pad_token_id
    judge_server.key = "the-right-key-123456"
    monkeypatch.setenv("ABLATE_TEST_BENCH_KEY", "a-wrong-key-123456")
    judge = {
        "url": judge_server.url,
        "model": "judge-x",
        "api_key_env": "ABLATE_TEST_BENCH_KEY",
        "cache": str(tmp_path / "j.sqlite"),
        "retries": 1,
    }
    bench = _write_bench(tmp_path, tiny_world, "judge", max_new_tokens=4, judge=judge)
    # a refused key: the trial fails naming it (never a silent COMPLETE with nothing scored)
    with pytest.raises(JudgeUnavailable) as err:
        score_bench(model, bench, encoder, pixels, loaded, pad, {}, "m")
    assert "answers unscored: HTTP 401 Unauthorized: Invalid API Key" in str(err.value)
    assert "a-wrong-key" not in str(err.value)
    # a judge that never answers in the format: the trial completes, every answer unscored for
    # its format (never 0), a few raw replies shown in the info, all kept in the cache
    monkeypatch.setenv("ABLATE_TEST_BENCH_KEY", "the-right-key-123456")
    judge_server.mode = "garbage"
    metrics, info = score_bench(model, bench, encoder, pixels, loaded, pad, {}, "m")
    turns = info["bench_turns"]
    assert metrics["judge_unscored"] == metrics["judge_unscored/unparsable"] == turns
    assert metrics["judge_unscored/auth"] == metrics["judge_unscored/transport"] == 0
    assert metrics["judge_requests"] == 2 * turns  # each asked again with a format reminder
    shown = info["judge_unparsable"]
    assert len(shown) == 3 and shown[0]["raw"] == "I cannot rate this."
    assert "no JSON object" in shown[0]["reason"]


def _broken_bench(tiny_world: dict[str, Path], out: Path, broken: int | None) -> Path:
    """The world's bench copied to `out` with image paths made absolute, the first `broken`
    dialogues' images pointing nowhere (all of them when None: only those with images kept)."""
    src = tiny_world["bench"]
    spec = yaml.safe_load(src.read_text())
    data = src.parent / spec["data"]
    lines = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    if broken is None:
        lines = [r for r in lines if r.get("image", r.get("images"))]
    for n, r in enumerate(lines):
        images = r.get("image", r.get("images")) or []
        images = [images] if isinstance(images, str) else images
        gone = broken is None or n < broken
        r["image"] = [str(out / "nowhere.png") if gone else str(data.parent / p) for p in images]
        r.pop("images", None)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (out / "bench.yaml").write_text(yaml.safe_dump({**spec, "data": "bench.jsonl"}))
    return out / "bench.yaml"


def test_a_bench_that_cannot_be_scored_is_refused_before_training(
    train_job: Any, tiny_world: dict[str, Path], tmp_path: Path
) -> None:
    """Every bench image missing: refused by `validate_job` (the sweep's check) and by the trial
    before it trains (before: each trial trained, then `bench_loss` was 0 on no turns); a few
    missing: a warning naming them, and the rest is scored."""
    from ablate.errors import UserError
    from ablate.plan import validate_job
    from ablate.trial import run_trial
    from ablate.trial.scoring import encoded_bench

    dead = _broken_bench(tiny_world, tmp_path / "dead", None)
    job = train_job(bench=str(dead))
    with pytest.raises(UserError, match=r"none of its \d+ dialogues can be scored: .*nowhere.png"):
        validate_job(job)
    mix = Mixture(name="m", volume=16, proportions={"colors": 1.0}, taxonomy="skill")
    with pytest.raises(UserError, match=r"dialogues can be scored with model .*unreadable_image"):
        run_trial(job, mix, {}, callbacks=[_NoTraining()])
    part = _broken_bench(tiny_world, tmp_path / "part", 2)
    (warning,) = validate_job(train_job(bench=str(part)))
    n = len(bench_records(load_bench(part)))
    assert warning.startswith(f"warning: bench {part}: 2 of its {n} dialogues cannot be scored")
    from ablate.models import load_model
    from ablate.trial.encode import DialogueEncoder

    encoder = DialogueEncoder(load_model(str(tiny_world["model"])).processor, 1024)
    bench = encoded_bench(part, encoder, {}, "m")
    assert len(bench.examples) == n - 2 and bench.skipped == {"unreadable_image": 2}


class _NoTraining:
    """A TrainerCallback stand-in that fails the test if training starts."""

    def on_train_begin(self, *args: Any, **kw: Any) -> None:
        raise AssertionError("trained on a bench that cannot be scored")

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kw: None


def test_a_bench_record_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    """`history` that is no list, and turns that do not alternate (two answers in a row):
    one line naming the data file's line (before: an AttributeError, or an IndexError inside
    transformers' chat template)."""
    from ablate.errors import UserError

    (tmp_path / "b.yaml").write_text("name: b\ndata: b.jsonl\n")
    q, a = {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}
    for record, match in (
        ({"conversations": [q, a], "history": "oops"}, r"b\.jsonl:1: `history` must be a list"),
        ({"conversations": [a, a]}, r"b\.jsonl:1: turn 0 is 'gpt'; a bench dialogue's turns"),
        ({"conversations": [q, a, a]}, r"turn 2 is 'gpt'"),
    ):
        (tmp_path / "b.jsonl").write_text(json.dumps(record) + "\n")
        with pytest.raises(UserError, match=match):
            bench_records(load_bench(tmp_path / "b.yaml"))
    (tmp_path / "b.jsonl").write_text(json.dumps({"conversations": [q, a], "history": [q, a]}))
    assert bench_records(load_bench(tmp_path / "b.yaml"))[0]["n_history"] == 2


def test_a_workers_finished_checkpoint_waits_for_the_driver(train_job: Any, tmp_path: Path) -> None:
    """Before: a trial removed its checkpoint folder when training ended; a driver killed before
    it recorded the result left its requeued trial nothing to resume from (review h: 70 of 94
    steps trained again from step 0). Now the worker removes it when the driver gives it its
    next trial (it has recorded the last), or retires it."""
    from ablate.sweep.workers import TrialWorker

    ckpt = tmp_path / "ckpt"
    job = train_job(train={"max_steps": 4, "checkpoint_dir": str(ckpt), "checkpoint_every": 2})
    mixes = [
        Mixture(name=f"m{s}", volume=24, proportions={"colors": 0.5, "lists": 0.5},
                taxonomy="skill", seed=s)
        for s in (0, 1)
    ]  # fmt: skip
    worker = TrialWorker()
    first = worker.run(job, mixes[0])
    assert "checkpoint_folder" not in first.info  # (never recorded in the study)
    (kept,) = ckpt.iterdir()
    assert (kept / "checkpoint-4").is_dir()  # what a requeued copy would resume from
    worker.run(job, mixes[1])
    (second,) = ckpt.iterdir()
    assert second != kept and "-s1-" in second.name
    worker.forget()  # retired: nothing left behind
    assert not any(ckpt.iterdir())


def test_a_max_length_that_cuts_every_bench_answer_says_to_raise_it(
    tiny_world: dict[str, Path],
) -> None:
    """Review q#5: `train.max_length: 4` failed every trial with "none of its 128 dialogues can
    be scored with model ..." (the cause cut from the progress line) and "Fix the bench's data
    or images", while the data was fine."""
    from ablate.errors import UserError
    from ablate.models import load_model
    from ablate.trial.encode import DialogueEncoder
    from ablate.trial.scoring import encoded_bench

    processor = load_model(str(tiny_world["model"])).processor
    with pytest.raises(UserError) as err:
        encoded_bench(tiny_world["bench"], DialogueEncoder(processor, 4), {}, "m")
    said = str(err.value)
    assert said.startswith(f"train.max_length 4 cuts every answer of bench {tiny_world['bench']}")
    need = int(said.split("raise train.max_length to at least ")[1].split()[0])
    assert "Fix the bench" not in said and need > 4
    assert encoded_bench(tiny_world["bench"], DialogueEncoder(processor, need), {}, "m").examples
    with pytest.raises(UserError, match=f"at least {need} "):
        encoded_bench(tiny_world["bench"], DialogueEncoder(processor, need - 1), {}, "m")
