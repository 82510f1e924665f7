"""Synthetic MMCR-shaped data for the data-layer benchmarks (issue 3).

MMCR-310k's shape: 210k single-image dialogues of 4 turns, 100k multi-image (2-4 images)
dialogues of 8 turns. Text is filler of realistic length (~60-word answers).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

N_IMAGE_FILES = 1000
"""Distinct image files the records point at (a stat each; the files are 1-pixel PNGs)."""

_WORDS = [
    "image",
    "shows",
    "a",
    "the",
    "red",
    "blue",
    "of",
    "on",
    "with",
    "and",
    "scene",
    "left",
    "right",
    "behind",
    "object",
    "person",
    "table",
    "window",
    "light",
    "shadow",
    "color",
    "shape",
    "count",
    "compare",
    "first",
    "second",
    "third",
    "previous",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def mmcr_record(i: int, rng: random.Random, text_words: int = 60) -> dict[str, object]:
    """Record i: single-image 4-turn if i % 31 < 21 (210/310), else multi-image 8-turn."""
    single = i % 31 < 21
    n_images = 1 if single else 2 + i % 3
    turns = 4 if single else 8
    conv = []
    for t in range(turns):
        prefix = "".join(f"Image{k + 1}: <image>\n" for k in range(n_images)) if t == 0 else ""
        conv.append({"from": "human", "value": prefix + _text(rng, 12) + "?"})
        conv.append({"from": "gpt", "value": _text(rng, text_words)})
    images = [f"images/{(i * 7 + k) % N_IMAGE_FILES}.png" for k in range(n_images)]
    return {
        "id": f"mmcr-{i:07d}",
        "image": images[0] if single else images,
        "conversations": conv,
        "domain": ("humanities", "natural", "science", "education")[i % 4],
    }


def write_jsonl(folder: Path, n: int, seed: int = 0) -> Path:
    """n records as JSONL plus the image files they reference."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    for k in range(N_IMAGE_FILES):
        path = folder / "images" / f"{k}.png"
        if not path.exists():
            Image.new("RGB", (1, 1)).save(path)
    rng = random.Random(seed)
    out = folder / "mmcr.jsonl"
    with out.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps(mmcr_record(i, rng)) + "\n")
    return out


def write_pool(folder: Path, n: int, text_words: int = 60, seed: int = 0) -> Path:
    """A pool folder of n rows written directly with pyarrow (fast; same schema as an import)."""
    from ablate.config import to_dict
    from ablate.pool import BASE_SCHEMA, MANIFEST_FILE, POOL_FILE, PoolManifest

    folder.mkdir(parents=True, exist_ok=True)
    schema = BASE_SCHEMA.append(pa.field("domain", pa.string()))
    rng = random.Random(seed)
    counts: dict[str, dict[str, int]] = {"task_type": {}, "domain": {}}
    batch = 20_000
    with ipc.new_file(str(folder / POOL_FILE), schema) as writer:
        for start in range(0, n, batch):
            recs = [mmcr_record(i, rng, text_words) for i in range(start, min(n, start + batch))]
            cols: dict[str, list[object]] = {name: [] for name in schema.names}
            for r in recs:
                imgs = r["image"] if isinstance(r["image"], list) else [r["image"]]
                task = "single_image" if len(imgs) == 1 else "multi_image"
                cols["id"].append(r["id"])
                cols["images"].append([os.path.join("/data", p) for p in imgs])
                cols["conversations"].append(r["conversations"])
                cols["n_images"].append(len(imgs))
                cols["n_turns"].append(len(r["conversations"]) // 2)  # type: ignore[arg-type]
                cols["task_type"].append(task)
                cols["domain"].append(r["domain"])
                for tax, label in (("task_type", task), ("domain", str(r["domain"]))):
                    counts[tax][label] = counts[tax].get(label, 0) + 1
            writer.write_batch(pa.RecordBatch.from_pydict(cols, schema=schema))
    manifest = PoolManifest(
        rows=n,
        columns=tuple(schema.names),
        labels=counts,
        fingerprint=f"synthetic-{n}-{text_words}-{seed}",
        source="synthetic",
        records_read=n,
    )
    (folder / MANIFEST_FILE).write_text(json.dumps(to_dict(manifest), indent=2))
    return folder
