"""Images as a model's processor takes them: files opened upright (their EXIF orientation
applied, as transformers' own `load_image` does) in RGB, and their pixel tensors cached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ablate.trial.errors import EncodeError


def load_image(path: str) -> Any:
    """Open an image as RGB; an unreadable one raises EncodeError naming the path."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            img = ImageOps.exif_transpose(opened)  # upright, as a camera's EXIF says
            if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                # 16-bit grey: Pillow's RGB conversion clips at 255 (all white); scale to 8 bits
                return img.convert("I").point(lambda v: v * (1 / 256)).convert("L").convert("RGB")
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise EncodeError("unreadable_image", f"cannot read image {path}: {err}") from None


class PixelCache:
    """Images are files loaded lazily; a dialogue pool reuses few files, so cache pixel tensors.

    Each image goes through the model's image processor alone; a batch concatenates the
    processor's tensors (`pixel_values`, `image_grid_thw`, `image_sizes`, ...) along dim 0,
    zero-padding dim 1 where images differ there (Llava-Next style patch counts).
    """

    def __init__(self, image_processor: Any, max_items: int = 4096) -> None:
        self.image_processor = image_processor
        self.max_items = max_items
        self._cache: dict[str, dict[str, Any]] = {}

    def one(self, path: str) -> dict[str, Any]:
        if path not in self._cache:
            out = self.image_processor(images=[load_image(path)], return_tensors="pt")
            if len(self._cache) >= self.max_items:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = {k: v for k, v in out.items() if hasattr(v, "shape")}
        return self._cache[path]

    def batch(self, paths: Sequence[str]) -> dict[str, Any]:
        import torch

        items = [self.one(p) for p in paths]
        if not items:
            return {}
        out = {}
        for key in items[0]:
            tensors = [x[key] for x in items]
            if tensors[0].dim() > 1 and len({t.shape[1] for t in tensors}) > 1:
                width = max(t.shape[1] for t in tensors)
                tensors = [
                    torch.nn.functional.pad(t, [0, 0] * (t.dim() - 2) + [0, width - t.shape[1]])
                    for t in tensors
                ]
            out[key] = torch.cat(tensors, dim=0)
        return out

    def __call__(self, paths: Sequence[str]) -> Any:
        """Pixel values of `paths` (the batch's main image tensor), or None for no images."""
        return self.batch(paths).get("pixel_values")


def model_inputs(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The entries of `batch` that `model` (or the model inside a peft wrapper) takes: as
    `generate` judges them, the arguments of its `prepare_inputs_for_generation`, of its
    forward where that passes keyword arguments on, and transformers' shared keyword arguments.
    A processor's own bookkeeping goes (Gemma3's image processor returns `num_crops`, which its
    model does not take and `generate` refuses)."""
    import inspect

    from transformers.utils import TransformersKwargs

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    takes = set(inspect.signature(base.prepare_inputs_for_generation).parameters)
    if takes & {"kwargs", "model_kwargs"}:
        takes |= set(inspect.signature(base.forward).parameters)
    takes |= set(TransformersKwargs.__optional_keys__)
    return {k: v for k, v in batch.items() if k in takes}
