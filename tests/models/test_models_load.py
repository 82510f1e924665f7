"""`load_model` of a `model.path` that is neither a local folder nor a model the hub gives says
so, naming the folder it looked for, instead of the hub's "couldn't connect"."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.models import load_model


def test_a_missing_model_folder_is_named_not_only_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # Offline, as on a cluster node without internet (and no time lost on the hub's retries).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError) as err:
        load_model("nomodel", device="cpu", looked_at=tmp_path / "nomodel")
    message = str(err.value)
    assert message.startswith(
        f"model.path: no model folder `nomodel` (resolved to {(tmp_path / 'nomodel').resolve()}) "
        "and the hub has no such model or cannot be reached"
    )
    # Not a valid hub id either: the same message, not "Repo id must be in the form ...".
    with pytest.raises(UserError, match=r"no model folder `a/b/c` .*the hub has no such model"):
        load_model("a/b/c", device="cpu")
