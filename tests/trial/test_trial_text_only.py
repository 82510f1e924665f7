"""A text-only model given a selection with images is refused before anything is encoded, with
advice that fits (an image-text-to-text model, or task types without images)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ablate.errors import UserError
from ablate.mixture import Mixture
from ablate.testing import TINY_FAMILIES
from ablate.trial import run_trial


def test_a_text_only_model_on_dialogues_with_images_is_refused_before_encoding(
    train_job: Callable[..., Any], world_texts: list[str], tmp_path: Path
) -> None:
    folder = TINY_FAMILIES.get("causal_lm")(tmp_path / "causal", world_texts)
    job = train_job(model={"path": str(folder)})
    mix = Mixture(
        name="m", volume=8, proportions={"single_image": 1.0}, taxonomy="task_type", seed=0
    )
    cache: dict[Any, Any] = {}
    with pytest.raises(UserError) as err:
        run_trial(job, mix, cache)
    assert str(err.value) == (
        f"{job.source}: model {folder} is a text-only causal LM, but 8 of the 8 selected "
        "dialogues have images (task_type single_image): use an image-text-to-text model in "
        "`model.path`, or leave those out of `task_types`"
    )
    assert not any(key[0] == "encoded" and value for key, value in cache.items())
