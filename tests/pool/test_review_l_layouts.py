"""Review l: data as researchers bring it. Parts of a Hugging Face `messages` record are joined
as the model's processor joins them (no newline between an image and its question), image parts
that carry their own image (Qwen-VL / TRL / OpenAI forms), gzip-, bzip2- and xz-compressed JSON
and JSONL, `"image": ""` on a text-only record, and an import whose every record is refused
naming the commonest reason instead of guessing at the layout."""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_pool import GOOD, write_source
from test_pool_published import report

from ablate.errors import UserError
from ablate.pool import ImportRequest, import_pool, open_pool
from ablate.pool.records import to_llava
from ablate.trial.encode import DialogueEncoder

QUESTION = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Which is red?"}]
TEXT = {"type": "text", "text": "Q?"}
ANSWER = {"role": "assistant", "content": [{"type": "text", "text": "The first."}]}


def hf(rid: str, content: list[Any], images: list[Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "messages": [{"role": "user", "content": content}, ANSWER]}
    if images is not None:
        out["images"] = images
    return out


def questions(pool: Path) -> dict[str, str]:
    table = open_pool(pool).table()
    convs = table.column("conversations").to_pylist()
    return {i: c[0]["value"] for i, c in zip(table.column("id").to_pylist(), convs, strict=True)}


def test_hf_parts_render_as_the_models_processor_renders_them(
    tiny_models: Callable[[str], Any],
) -> None:
    """Joined with a newline, every image of a Qwen2-VL dialogue was followed by a newline
    token at training that the model's processor never produces at inference."""
    record = hf("r", QUESTION, ["a.png", "b.png"])
    stored = to_llava(record)["conversations"]
    assert stored[0]["value"] == "<image><image>Which is red?"
    qwen = tiny_models("qwen2vl")
    ours = DialogueEncoder(qwen.processor).render(
        [
            {"role": "user", "content": stored[0]["value"]},
            {"role": "assistant", "content": "The first."},
        ]
    )
    assert ours == qwen.processor.apply_chat_template(record["messages"], tokenize=False)
    assert "<|vision_end|><|vision_start|>" in ours and "<|vision_end|>Which" in ours
    cauldron = {"images": ["a.png"], "texts": [{"user": "Q?", "assistant": "A."}]}
    assert to_llava(cauldron)["conversations"][0]["value"] == "<image>Q?"


def test_image_parts_that_carry_their_image_are_imported(tmp_path: Path) -> None:
    src = write_source(tmp_path / "src", [])
    data = base64.b64encode((src.parent / "imgs/img1.png").read_bytes()).decode()
    records = [
        hf("qwen", [{"type": "image", "image": "imgs/img0.png"}, {"type": "text", "text": "Q?"}]),
        hf(
            "file",
            [{"type": "image", "image": f"file://{src.parent}/imgs/img2.png"}, TEXT],
        ),
        hf("path", [{"type": "image", "path": "imgs/img3.png"}, {"type": "text", "text": "Q?"}]),
        hf("b64", [{"type": "image", "base64": data}, {"type": "text", "text": "Q?"}]),
        hf(
            "openai",
            [
                {"type": "image_url", "image_url": {"url": "imgs/img0.png"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                {"type": "text", "text": "Q?"},
            ],
        ),
        hf("same", [{"type": "image", "image": "imgs/img0.png"}], ["imgs/img0.png"]),
        hf("web", [{"type": "image", "image": "https://example.com/a.jpg"}]),
        hf(
            "some",
            [{"type": "image", "image": "imgs/img0.png"}, {"type": "image"}],
            ["imgs/img1.png"],
        ),
        hf("twice", [{"type": "image", "image": "imgs/img0.png"}], ["imgs/img1.png"]),
        hf("nourl", [{"type": "image_url", "image_url": {}}]),
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    assert m.rows == 6 and m.skipped == 4
    table = open_pool(tmp_path / "pool").table()
    images = dict(zip(table.column("id").to_pylist(), table.column("images").to_pylist(),
                      strict=True))  # fmt: skip
    assert images["qwen"] == [str(src.parent / "imgs/img0.png")]
    assert images["file"] == [str(src.parent / "imgs/img2.png")]
    assert images["path"] == [str(src.parent / "imgs/img3.png")]
    assert images["b64"][0].startswith(str(tmp_path / "pool/images/"))
    assert images["b64"][0].endswith(".png")
    assert images["openai"][0] == str(src.parent / "imgs/img0.png") and len(images["openai"]) == 2
    assert questions(tmp_path / "pool")["openai"] == "<image><image>Q?"
    bad = {e["id"]: e for e in report(tmp_path / "pool")}
    assert bad["web"]["code"] == "remote_image"
    assert "web address 'https://example.com/a.jpg' under `image`" in bad["web"]["reason"]
    assert "download the images and give their local paths" in bad["web"]["reason"]
    assert "1 of the record's 2 image parts carry their image" in bad["some"]["reason"]
    assert (
        "lists 1 image(s) in `images` and its image parts carry 1 others" in bad["twice"]["reason"]
    )
    assert "image_url part without a url" in bad["nourl"]["reason"]


@pytest.mark.parametrize(
    ("suffix", "opener"), [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)]
)
@pytest.mark.parametrize("name", ["data.jsonl", "data.json"])
def test_compressed_json_and_jsonl_are_read_record_by_record(
    tmp_path: Path, suffix: str, opener: Any, name: str
) -> None:
    plain = write_source(tmp_path / "src", GOOD, name=name)
    packed = plain.with_name(plain.name + suffix)
    with opener(packed, "wb") as fh:
        fh.write(plain.read_bytes())
    m = import_pool(ImportRequest(source=packed, out=tmp_path / "packed"))
    ref = import_pool(ImportRequest(source=plain, out=tmp_path / "plain"))
    assert m.rows == 5 and m.fingerprint == ref.fingerprint


def test_a_cut_compressed_file_is_named_with_where_it_broke(tmp_path: Path) -> None:
    plain = write_source(tmp_path / "src", GOOD * 40)  # ids repeat: renamed below
    packed = plain.with_name("data.jsonl.gz")
    packed.write_bytes(gzip.compress(plain.read_bytes())[:-200])
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=packed, out=tmp_path / "pool", duplicate_ids="rename"))
    text = str(err.value)
    assert text.startswith(f"{packed}: the gzip stream is damaged or cut short after line ")
    assert "`gzip -t data.jsonl.gz` tests it" in text


def test_an_empty_image_string_is_a_text_only_record(tmp_path: Path) -> None:
    records = [
        {"id": "t1", "image": "", "conversations": GOOD[2]["conversations"]},
        {"id": "t2", "image": None, "conversations": GOOD[2]["conversations"]},
    ]
    src = write_source(tmp_path / "src", records)
    m = import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    assert m.rows == 2 and m.labels["task_type"] == {"text_only": 2}


def test_an_import_with_no_valid_record_names_the_commonest_reason(tmp_path: Path) -> None:
    records = [hf(f"r{i}", [{"type": "image", "image": "https://x/a.jpg"}]) for i in range(3)]
    src = write_source(tmp_path / "src", records)
    with pytest.raises(UserError) as err:
        import_pool(ImportRequest(source=src, out=tmp_path / "pool", on_invalid="skip"))
    text = str(err.value)
    assert "gave no rows: all 3 of its records were skipped, 3 as `remote_image`, e.g." in text
    assert "check the file layout" not in text and "fix the records" in text


def test_a_damaged_or_mismatched_pool_table_is_named_by_data_show(tmp_path: Path) -> None:
    """A pool folder copied half-way: `data show` printed the manifest's counts (rc 0) and the
    sweep that read the table died in an ArrowInvalid traceback."""
    from ablate.pool import show_pool

    src = write_source(tmp_path / "src", GOOD)
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    table = tmp_path / "pool/pool.arrow"
    whole = table.read_bytes()
    table.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match=r"pool\.arrow: not a readable pool table \(.*cut short"):
        show_pool(open_pool(tmp_path / "pool"))
    import_pool(ImportRequest(source=write_source(tmp_path / "two", GOOD[:2]), out=tmp_path / "p2"))
    table.write_bytes((tmp_path / "p2/pool.arrow").read_bytes())
    with pytest.raises(UserError, match=r"holds 2 rows but .*manifest\.json says 5: the two files"):
        open_pool(tmp_path / "pool").table()
