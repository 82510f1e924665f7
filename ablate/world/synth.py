"""The built-in miniature MMCR-like world: procedural images, multi-turn dialogues and a bench.

Shaped like MMCR-310k (see DESIGN.md): 8 domains; single-image dialogues with 4 turns,
multi-image dialogues (2-4 images) with 8 turns, and a few text-only ones; answers are short
closed-form words so scoring is exact. Several *skills* (the world's own task types) use
disjoint answer vocabularies, so a model only answers a skill well after training on it: the
share of each skill in a mixture really moves the score, which is what the demo must show.

A turn is *contextual* when its answer cannot be found from its own question and the images
alone: it refers back to an earlier turn ("that image", "the first colour you named") or
combines two images. The bench marks such turns with `"contextual": true`; contextual
accuracy is the exact-match accuracy on those turns only.

Everything is drawn from `numpy.random.Generator(PCG64(seed))`: the same seed writes the same
files byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ablate.config import keep_out_of_ray_uploads, writable_folder
from ablate.errors import UserError

WORLD_VERSION = 1

DOMAINS = {
    # domain -> the way its dialogues frame an image (MMCR-Bench names 4 of its 8 domains)
    "humanities": "this museum card",
    "natural": "this nature snapshot",
    "science": "this lab diagram",
    "education": "this worksheet",
    "technology": "this app icon",
    "lifestyle": "this sticker",
    "sports": "this team badge",
    "arts": "this painting",
}
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 170),
    "white": (245, 245, 245),
}
SHAPES = ("square", "circle", "bar")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
FRUITS = ("apple", "pear", "plum", "lemon", "mango", "grape", "melon", "kiwi")

# skill -> structure; the bench holds the same number of dialogues of every skill
SKILLS = ("colors", "layout", "compare", "lists")
SKILL_STRUCTURE = {"colors": "single", "layout": "single", "compare": "multi", "lists": "text"}


@dataclass(frozen=True)
class WorldSpec:
    out: Path
    """Folder to write into (`train.jsonl`, `bench.jsonl`, `bench.yaml`, `images/`)."""
    n_train: int = 8000
    """Dialogues in the training set."""
    n_bench_per_cell: int = 4
    """Bench dialogues per (domain, skill): 8 domains x 4 skills x 4 = 128 dialogues."""
    seed: int = 0
    image_size: int = 32
    """Side of the square images in pixels."""


@dataclass(frozen=True)
class WorldFiles:
    root: Path
    train: Path
    bench: Path
    bench_yaml: Path
    images: Path
    n_train: int
    n_bench: int


def _image_name(bg: str, shape: str, fg: str, pos: str) -> str:
    return f"{bg}-{shape}-{fg}-{pos.replace(' ', '_')}.png"


def draw_image(bg: str, shape: str, fg: str, pos: str, size: int):  # -> PIL.Image.Image
    """One picture: a background colour and one shape of another colour in a quadrant."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), COLORS[bg])
    draw = ImageDraw.Draw(img)
    half = size // 2
    x0 = half if "right" in pos else 0
    y0 = half if "bottom" in pos else 0
    pad = max(1, size // 16)
    box = (x0 + pad, y0 + pad, x0 + half - pad - 1, y0 + half - pad - 1)
    if shape == "square":
        draw.rectangle(box, fill=COLORS[fg])
    elif shape == "circle":
        draw.ellipse(box, fill=COLORS[fg])
    else:  # a horizontal bar across the quadrant
        mid = (box[1] + box[3]) // 2
        draw.rectangle((box[0], mid - size // 16, box[2], mid + size // 16), fill=COLORS[fg])
    return img


def _random_image(rng: np.random.Generator) -> dict[str, str]:
    bg, fg = rng.choice(list(COLORS), size=2, replace=False)
    return {
        "bg": str(bg),
        "fg": str(fg),
        "shape": str(rng.choice(SHAPES)),
        "pos": str(rng.choice(POSITIONS)),
    }


def _turn(question: str, answer: str, contextual: bool) -> list[dict]:
    return [
        {"from": "human", "value": question},
        {"from": "gpt", "value": answer, "contextual": contextual},
    ]


def _dialogue_colors(rng: np.random.Generator, frame: str) -> tuple[list[dict], list[dict]]:
    im = _random_image(rng)
    order = rng.permutation(2)
    asks = [
        (f"<image>\nWhat color is the background of {frame}?", im["bg"]),
        (f"<image>\nWhat color is the {im['shape']} in {frame}?", im["fg"]),
    ]
    first, second = asks[order[0]], asks[order[1]]
    turns = _turn(first[0], first[1], False) + _turn(
        second[0].replace("<image>\n", ""), second[1], False
    )
    recall = [
        ("Which color did you name first?", first[1]),
        ("And which did you name second?", second[1]),
    ]
    for q, a in [recall[i] for i in rng.permutation(2)]:
        turns += _turn(q, a, True)
    return [im], turns


def _dialogue_layout(rng: np.random.Generator, frame: str) -> tuple[list[dict], list[dict]]:
    im = _random_image(rng)
    turns = _turn(f"<image>\nWhat shape is in {frame}?", im["shape"], False)
    turns += _turn("Where is it?", im["pos"], True)  # "it" = the shape named in turn 1
    turns += _turn(f"Is the background {im['bg']}?", "yes", False)
    other = str(rng.choice([s for s in SHAPES if s != im["shape"]]))
    if rng.random() < 0.5:
        turns += _turn(f"Did you say it was a {other}?", "no", True)
    else:
        turns += _turn(f"Did you say it was a {im['shape']}?", "yes", True)
    # balance yes/no for the third turn as well
    if rng.random() < 0.5:
        wrong = str(rng.choice([c for c in COLORS if c != im["bg"]]))
        turns[4] = {"from": "human", "value": f"Is the background {wrong}?"}
        turns[5] = {"from": "gpt", "value": "no", "contextual": False}
    return [im], turns


def _dialogue_compare(rng: np.random.Generator, frame: str) -> tuple[list[dict], list[dict]]:
    k = int(rng.integers(2, 5))
    bgs = rng.choice(list(COLORS), size=k, replace=False)
    images = []
    for bg in bgs:
        fg = rng.choice([c for c in COLORS if c != bg])
        images.append(
            {
                "bg": str(bg),
                "fg": str(fg),
                "shape": str(rng.choice(SHAPES)),
                "pos": str(rng.choice(POSITIONS)),
            }
        )
    prefix = "".join(f"Image{i + 1}: <image>\n" for i in range(k))
    turns = _turn(f"{prefix}How many pictures like {frame} are there?", NUMBER_WORDS[k], False)
    for _ in range(7):
        i = int(rng.integers(k))
        kind = int(rng.integers(3))
        if kind == 0:
            turns += _turn(
                f"Which image has a {images[i]['bg']} background?", f"image {i + 1}", False
            )
        elif kind == 1:
            turns += _turn(f"What shape is in image {i + 1}?", images[i]["shape"], False)
        else:
            # refers to the image named in the previous answer or question: contextual
            last = turns[-1]["value"] if turns[-1]["value"].startswith("image") else None
            if last is not None:
                j = int(last.split()[1]) - 1
                turns += _turn("What color is the shape in that image?", images[j]["fg"], True)
            else:
                j, other = (int(x) for x in rng.choice(k, size=2, replace=False))
                same = images[j]["shape"] == images[other]["shape"]
                turns += _turn(
                    f"Does image {j + 1} show the same shape as image {other + 1}?",
                    "yes" if same else "no",
                    True,
                )
    return images, turns


def _dialogue_lists(rng: np.random.Generator, frame: str) -> tuple[list[dict], list[dict]]:
    n = int(rng.integers(2, 5))
    items = [str(x) for x in rng.choice(FRUITS, size=n, replace=False)]
    listed = ", ".join(items[:-1]) + " and " + items[-1]
    turns = _turn(
        f"For {frame.replace('this ', 'my ')} I picked {listed}. How many did I pick?",
        NUMBER_WORDS[n],
        False,
    )
    turns += _turn("Which one did I pick first?", items[0], True)
    turns += _turn("And the last one?", items[-1], True)
    turns += _turn("How many was that again?", NUMBER_WORDS[n], True)
    return [], turns


MAKERS = {
    "colors": _dialogue_colors,
    "layout": _dialogue_layout,
    "compare": _dialogue_compare,
    "lists": _dialogue_lists,
}


def make_dialogue(rng: np.random.Generator, skill: str, domain: str, dialogue_id: str) -> dict:
    """One LLaVA-layout record plus its world labels (`skill`, `domain`)."""
    images, turns = MAKERS[skill](rng, DOMAINS[domain])
    record: dict = {"id": dialogue_id}
    if images:
        names = [_image_name(im["bg"], im["shape"], im["fg"], im["pos"]) for im in images]
        record["image"] = (
            f"images/{names[0]}" if len(names) == 1 else [f"images/{n}" for n in names]
        )
    record["conversations"] = turns
    record["domain"] = domain
    record["skill"] = skill
    return record


# the training set's natural skill shares: MMCR-310k is 2/3 single-image, 1/3 multi-image
TRAIN_SKILL_SHARES = {"colors": 0.3, "layout": 0.3, "compare": 0.25, "lists": 0.15}


def _written_before(out: Path, stamp: Path, want: dict) -> bool:
    """Whether `out` holds this same world; if not, `out` made ready for it (or refused)."""
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return True
    writable_folder(out, "world")
    # only a world ablate wrote (its `world.json`) is replaced: a user's own files of these
    # names were silently overwritten (review q#7)
    ours = ("train.jsonl", "bench.jsonl", "bench.yaml", "images")
    if not stamp.is_file() and (held := [n for n in ours if (out / n).exists()]):
        raise UserError(
            f"--out {out}: holds {', '.join(held)} (not a world made by ablate: no world.json); "
            "give an empty or new folder"
        )
    stamp.write_text(json.dumps({"writing": True}))  # a killed run's folder stays ours
    return False


def synth_world(spec: WorldSpec) -> WorldFiles:
    """Write the world (reused as is when the same spec was written there before)."""
    out = Path(spec.out)
    files = WorldFiles(
        root=out,
        train=out / "train.jsonl",
        bench=out / "bench.jsonl",
        bench_yaml=out / "bench.yaml",
        images=out / "images",
        n_train=spec.n_train,
        n_bench=len(DOMAINS) * len(SKILLS) * spec.n_bench_per_cell,
    )
    stamp = out / "world.json"
    want = {"version": WORLD_VERSION, **{k: str(v) for k, v in asdict(spec).items() if k != "out"}}
    if _written_before(out, stamp, want):
        return files
    files.images.mkdir(parents=True, exist_ok=True)
    keep_out_of_ray_uploads(out)
    for bg in COLORS:
        for fg in COLORS:
            if fg == bg:
                continue
            for shape in SHAPES:
                for pos in POSITIONS:
                    path = files.images / _image_name(bg, shape, fg, pos)
                    draw_image(bg, shape, fg, pos, spec.image_size).save(path)

    rng = np.random.default_rng([spec.seed, 1])
    skills = rng.choice(
        list(TRAIN_SKILL_SHARES), size=spec.n_train, p=list(TRAIN_SKILL_SHARES.values())
    )
    domains = rng.choice(list(DOMAINS), size=spec.n_train)
    with files.train.open("w") as f:
        for i, (skill, domain) in enumerate(zip(skills, domains, strict=True)):
            record = make_dialogue(rng, str(skill), str(domain), f"world-{i:06d}")
            for turn in record["conversations"]:
                turn.pop("contextual", None)  # training data is plain LLaVA layout
            f.write(json.dumps(record) + "\n")

    bench_rng = np.random.default_rng([spec.seed, 2])
    with files.bench.open("w") as f:
        n = 0
        for domain in DOMAINS:
            for skill in SKILLS:
                for _ in range(spec.n_bench_per_cell):
                    f.write(
                        json.dumps(make_dialogue(bench_rng, skill, domain, f"bench-{n:04d}")) + "\n"
                    )
                    n += 1
    files.bench_yaml.write_text(
        "# the built-in world's bench: exact match on every assistant turn\n"
        "name: world-bench\n"
        f"version: {WORLD_VERSION}\n"
        "data: bench.jsonl\n"
        "domain_field: domain\n"
        "group_fields: [skill]\n"
        "scorer: exact\n"
    )
    stamp.write_text(json.dumps(want, indent=1))
    return files


def world_corpus(files: WorldFiles) -> list[str]:
    """Every text of the training set: what the tiny model's tokenizer is trained on."""
    texts = []
    with files.train.open() as f:
        for line in f:
            texts += [turn["value"] for turn in json.loads(line)["conversations"]]
    return texts
