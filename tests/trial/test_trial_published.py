"""A pool combined from data laid out as the peer datasets publish it trains in `ablate trial`
with its images: a hub snapshot of Parquet shards in the Hugging Face layout (embedded images,
content parts, a system turn, no ids), a Cauldron-style Parquet (`images` + `texts`) and a
ShareGPT-style JSONL (`from: user/assistant`, image files on disk), all built from the tiny
world's dialogues with `datasets` and PIL."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pytest

from ablate.pool import ImportRequest, Source, import_pool, open_pool

PARTS = datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})
HF = datasets.Features(
    {
        "messages": datasets.List({"role": datasets.Value("string"), "content": PARTS}),
        "images": datasets.List(datasets.Image()),
        "skill": datasets.Value("string"),
    }
)
CAULDRON = datasets.Features(
    {
        "images": datasets.List(datasets.Image()),
        "texts": datasets.List(
            {
                "user": datasets.Value("string"),
                "assistant": datasets.Value("string"),
                "source": datasets.Value("string"),
            }
        ),
        "skill": datasets.Value("string"),
    }
)


def _images(world: Path, rec: dict[str, Any]) -> list[str]:
    raw = rec.get("image") or []
    return [str(world / p) for p in ([raw] if isinstance(raw, str) else raw)]


def _embedded(world: Path, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """As the hub stores images: the bytes, with only the original file name as `path`."""
    return [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p in _images(world, rec)]


def _parts(text: str) -> list[dict[str, str | None]]:
    parts: list[dict[str, str | None]] = []
    for n, piece in enumerate(text.split("<image>")):
        if n:
            parts.append({"type": "image", "text": None})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def hf_row(world: Path, rec: dict[str, Any]) -> dict[str, Any]:
    roles = {"human": "user", "gpt": "assistant"}
    system = {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]}
    turns = [
        {"role": roles[t["from"]], "content": _parts(t["value"])} for t in rec["conversations"]
    ]
    return {"messages": [system, *turns], "images": _embedded(world, rec), "skill": rec["skill"]}


def cauldron_row(world: Path, rec: dict[str, Any]) -> dict[str, Any]:
    conv = rec["conversations"]
    texts = [
        {
            "user": re.sub(r"(Image\d+: )?<image>\n?", "", q["value"]),
            "assistant": a["value"],
            "source": "world",
        }
        for q, a in zip(conv[::2], conv[1::2], strict=True)
    ]
    return {"images": _embedded(world, rec), "texts": texts, "skill": rec["skill"]}


def sharegpt_row(rec: dict[str, Any]) -> dict[str, Any]:
    roles = {"human": "user", "gpt": "assistant"}
    out = {k: v for k, v in rec.items() if k != "id"}
    out["conversations"] = [
        {"from": roles[t["from"]], "value": t["value"]} for t in rec["conversations"]
    ]
    return out


@pytest.fixture(scope="module")
def published(tiny_world: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three sources imported into one pool; returns the pool folder."""
    root = tmp_path_factory.mktemp("published")
    world = tiny_world["world"]
    records = [json.loads(x) for x in tiny_world["train"].read_text().splitlines()[:150]]
    (root / "onevision/data").mkdir(parents=True)
    for i in range(2):  # a hub snapshot: two shards of the train split
        rows = [hf_row(world, r) for r in records[i * 25 : (i + 1) * 25]]
        shard = root / f"onevision/data/train-{i:05d}-of-00002.parquet"
        datasets.Dataset.from_list(rows, features=HF).to_parquet(str(shard))
    rows = [cauldron_row(world, r) for r in records[50:100]]
    datasets.Dataset.from_list(rows, features=CAULDRON).to_parquet(str(root / "cauldron.parquet"))
    (root / "sharegpt.jsonl").write_text(
        "".join(json.dumps(sharegpt_row(r)) + "\n" for r in records[100:150])
    )
    pool = root / "pool"
    manifest = import_pool(
        ImportRequest(
            source=[
                Source(root / "onevision", name="onevision"),
                Source(root / "cauldron.parquet", name="cauldron"),
                Source(root / "sharegpt.jsonl", name="sharegpt"),
            ],
            out=pool,
            image_root=world,
        )
    )
    assert (manifest.rows, manifest.skipped, manifest.ids_made) == (150, 0, 150)
    assert manifest.labels["skill"] == dict(sorted(Counter(r["skill"] for r in records).items()))
    assert manifest.labels["source"] == {"cauldron": 50, "onevision": 50, "sharegpt": 50}
    n_embedded = sum(len(_images(world, r)) for r in records[:100])
    assert manifest.images_written + manifest.images_deduplicated == n_embedded
    return pool


def test_published_layouts_train_in_a_trial_with_their_images(
    published: Path, train_job: Any, tmp_path: Path, capsys: Any
) -> None:
    import yaml

    from ablate.cli import main
    from ablate.config import to_dict

    table = open_pool(published).table()
    stored = [p for ps in table.column("images").to_pylist() for p in ps if "/images/" in p]
    assert stored and all(Path(p).is_file() for p in stored)
    assert all(str(published) in p for p in stored[:10])  # embedded: the pool's own store
    first = table.column("conversations").to_pylist()[0]
    assert first[0] == {"from": "system", "value": "Answer briefly."}

    data = to_dict(train_job())
    data["pool"] = str(published)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["trial", str(path), "--json", "--set", "design.volumes=[32]"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(result["counts"].values()) == 32
    assert result["info"]["skipped_dialogues"] == 0  # every image read, every template rendered
    assert math.isfinite(result["metrics"]["overall_accuracy"])
    assert math.isfinite(result["metrics"]["train_loss"]) and result["info"]["steps"] == 4
