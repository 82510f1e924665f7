"""The built-in world: deterministic, MMCR-shaped, with exact closed-form answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from ablate.world import DOMAINS, SKILLS, WorldSpec, synth_world


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = synth_world(WorldSpec(out=tmp_path / "a", n_train=200))
    b = synth_world(WorldSpec(out=tmp_path / "b", n_train=200))
    c = synth_world(WorldSpec(out=tmp_path / "c", n_train=200, seed=1))
    assert a.train.read_bytes() == b.train.read_bytes()
    assert a.bench.read_bytes() == b.bench.read_bytes()
    assert a.train.read_bytes() != c.train.read_bytes()


def test_reused_when_present(tmp_path: Path) -> None:
    files = synth_world(WorldSpec(out=tmp_path, n_train=50))
    stamp = files.train.stat().st_mtime_ns
    synth_world(WorldSpec(out=tmp_path, n_train=50))
    assert files.train.stat().st_mtime_ns == stamp
    synth_world(WorldSpec(out=tmp_path, n_train=60))  # another spec rewrites
    assert len(files.train.read_text().splitlines()) == 60


def test_shapes_like_mmcr(tmp_path: Path) -> None:
    files = synth_world(WorldSpec(out=tmp_path, n_train=400))
    train = _records(files.train)
    assert len(train) == 400
    for r in train:
        images = r.get("image", [])
        images = [images] if isinstance(images, str) else images
        turns = r["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum(t["value"].count("<image>") for t in turns) == len(images)
        assert all((files.root / p).is_file() for p in images)
        if len(images) == 1:
            assert len(turns) == 8  # 4 turns of question + answer
        elif len(images) > 1:
            assert 2 <= len(images) <= 4 and len(turns) == 16  # 8 turns
            assert turns[0]["value"].startswith("Image1: <image>\n")
        assert r["domain"] in DOMAINS and r["skill"] in SKILLS
        assert all(len(t["value"].split()) <= 2 for t in turns[1::2])  # short closed-form answers
    assert {r["skill"] for r in train} == set(SKILLS)


def test_bench_covers_every_domain_and_skill_with_contextual_turns(tmp_path: Path) -> None:
    files = synth_world(WorldSpec(out=tmp_path, n_train=10, n_bench_per_cell=2))
    bench = _records(files.bench)
    assert len(bench) == len(DOMAINS) * len(SKILLS) * 2 == files.n_bench
    cells = {(r["domain"], r["skill"]) for r in bench}
    assert len(cells) == len(DOMAINS) * len(SKILLS)
    answers = [t for r in bench for t in r["conversations"] if t["from"] == "gpt"]
    contextual = [t for t in answers if t["contextual"]]
    assert 0.2 < len(contextual) / len(answers) < 0.6
    assert not set(_records(files.train)[0]) - {"id", "image", "conversations", "domain", "skill"}


def test_answers_are_true_of_the_drawn_images(tmp_path: Path) -> None:
    """The colour asked about is the colour of the pixels: answers are exact, not decoration."""
    from ablate.world import COLORS

    files = synth_world(WorldSpec(out=tmp_path, n_train=300))
    checked = 0
    for r in _records(files.train):
        if r["skill"] != "colors":
            continue
        turns = r["conversations"]
        image = Image.open(files.root / r["image"]).convert("RGB")
        for q, a in zip(turns[0:4:2], turns[1:4:2], strict=True):
            if "background" in q["value"]:
                # shapes keep a margin inside their quadrant, so a corner pixel is background
                assert image.getpixel((0, 0)) == COLORS[a["value"]]
                checked += 1
    assert checked > 50


def test_the_gpu_trials_llava_is_a_1b_model_and_the_tiny_one_keeps_its_shapes() -> None:
    """`LLAVA_1B` (benchmarks/gpu_trial.py): a CLIP ViT-L/14-336 tower + a TinyLlama-1.1B-shaped
    language model, counted on the meta device (no weights allocated)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from ablate.world import LLAVA_1B, SPECIAL_TOKENS, TinyModelSpec, train_tokenizer
    from ablate.world.tiny_model import END_TOKEN, IMAGE_TOKEN, _llava_config

    tokenizer = train_tokenizer(
        ["a red square left of a blue circle"] * 8, 512, SPECIAL_TOKENS, pad_token="<pad>",
        bos_token="<s>", eos_token=END_TOKEN, extra_special_tokens={"image_token": IMAGE_TOKEN},
    )  # fmt: skip
    image_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))

    def counts(spec: TinyModelSpec) -> tuple[int, int, Any]:
        config = _llava_config(spec, tokenizer, image_id)
        with torch.device("meta"):
            model = LlavaForConditionalGeneration(config)
        vision = sum(p.numel() for p in model.model.vision_tower.parameters())
        return sum(p.numel() for p in model.parameters()), vision, config

    total, vision, config = counts(LLAVA_1B)
    assert 1.25e9 < total < 1.3e9 and 0.30e9 < vision < 0.31e9
    assert config.text_config.num_key_value_heads == 4 and config.image_seq_length == 576
    total, _, config = counts(TinyModelSpec())
    assert total < 1e6 and config.text_config.intermediate_size == 192  # twice 96, as before
