"""Whether the job's model takes images, from its config alone, against the bench's images.

A text-only model (a causal LM, or any model under `model.kind: causal-lm`) cannot be given a
bench dialogue's images: the trial leaves such a dialogue out of the score
(`images_for_text_model`), and with a bench of images only it fails, after loading the model,
in every trial of the design. `check_model_images(job)` says so before anything is enqueued,
from the model's `config.json` (read as `check_lora_targets` reads it: no weights, no
processor) and the bench's records.

    check_model_images(job)   a UserError when no bench dialogue can be scored; else warnings
"""

from __future__ import annotations

from pathlib import Path

from ablate.bench import bench_records, load_bench
from ablate.config import JobSpec, ModelSpec
from ablate.errors import UserError
from ablate.trial.lora_targets import job_models, model_config, model_kind

#: Files whose presence gives `load_model`'s processor an image processor (`kind: auto`).
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
#: Config keys of a vision part (`vision_config`, Ovis's `visual_tokenizer_config`, LLaVA's
#: original `mm_vision_tower`, `image_token_index`): a model with one is not called text-only.
VISION_WORDS = ("vision", "visual", "image", "mm_")
#: The fix both messages name.
FIX = "use an image-text-to-text model, or a bench without images"


def text_only(spec: ModelSpec, base_dir: Path) -> str | None:
    """What makes the model text-only, as a message says it (`a text-only model
    (LlamaForCausalLM, by its config.json)`), or None when it takes images or this cannot tell
    without loading it (then the trial decides). `model.kind: causal-lm` loads any model with
    its tokenizer alone; `auto` is called text-only only when the config names no
    image-text-to-text class and no vision part, and no processor file lies beside it (the
    processor `load_model` decides `auto` by would have an image processor)."""
    found = model_config(spec, base_dir)
    if found is None:
        return None
    config, where = found
    if model_kind(config, spec.kind) == "image-text-to-text":
        return None
    if spec.kind == "causal-lm":
        return "loaded text-only (`kind: causal-lm`)"
    keys = config.to_dict()
    if any(word in key for key in keys for word in VISION_WORDS) or _processor_file(where):
        return None
    names = getattr(config, "architectures", None) or [getattr(config, "model_type", "?")]
    return f"a text-only model ({names[0]}, by its config.json)"


def _processor_file(where: str) -> bool:
    """A processor file in the model's folder, or in the local hub cache for a hub id."""
    if Path(where).is_dir():
        return any((Path(where) / name).is_file() for name in PROCESSOR_FILES)
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(where, n), str) for n in PROCESSOR_FILES)


def check_model_images(job: JobSpec) -> list[str]:
    """Refuse, before anything is enqueued, a text-only model (each of `models:`) with a
    bench whose dialogues all have images: every trial would load the model and fail. When
    only some have images, a warning line: they are left out of every trial's score. Nothing
    for a model that takes images, one this cannot tell from its config, or a job without a
    bench file (`check_bench` says when the file is missing)."""
    bench = job.bench_file
    if job.objective.kind != "train" or bench is None or not bench.is_file():
        return []
    found = [(key, spec, text_only(spec, job.base_dir)) for key, spec in job_models(job)]
    text_models = [(key, spec, why) for key, spec, why in found if why is not None]
    if not text_models:
        return []
    records = bench_records(load_bench(bench))
    with_images = sum(1 for r in records if r["images"])
    if not with_images:
        return []
    warnings = []
    for key, spec, why in text_models:
        model = f"{job.source or 'job'}: `{key}.path` {spec.path} is {why}"
        counted = f"{with_images} of the {len(records)} dialogues of the bench {bench} have images"
        if with_images == len(records):
            raise UserError(f"{model}, and {counted}, so none can be scored; {FIX}")
        warnings.append(
            f"warning: {model}: {counted} and will be left unscored in every trial "
            f"(`info/bench_skipped` counts them); to score them, {FIX}"
        )
    return warnings
