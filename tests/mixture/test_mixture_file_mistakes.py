"""Review q#14: mixture files whose mistakes were accepted or half-explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.mixture import load_mixture


def test_an_empty_mixture_file_is_refused(tmp_path: Path) -> None:
    """It was the natural mixture of 1,000 rows at seed 0, silently."""
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(UserError, match=rf"^{path}: the mixture file is empty; give at least"):
        load_mixture(path)


def test_a_temperature_typo_beside_natural_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("proportions: {natural: true, temprature: 0.5}\n")
    with pytest.raises(UserError) as err:
        load_mixture(path)
    assert "mixes `natural` with temprature (did you mean `temperature`?); use" in str(err.value)


def test_mixture_show_refuses_a_damaged_pool(tmp_path: Path) -> None:
    """`mixture show` on a truncated `pool.arrow` printed the manifest's rows as available,
    exit 0, while `data show` and `materialize` refused the same pool."""
    import json

    from ablate.mixture import Mixture, mixture_summary
    from ablate.pool import ImportRequest, import_pool, open_pool

    turns = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "conversations": turns}) + "\n"
                           for i in range(20)))  # fmt: skip
    import_pool(ImportRequest(source=src, out=tmp_path / "pool"))
    mixture = Mixture(volume=10, proportions="natural")
    assert "text_only" in mixture_summary(mixture, open_pool(tmp_path / "pool"))
    arrow = tmp_path / "pool" / "pool.arrow"
    arrow.write_bytes(arrow.read_bytes()[:200])
    with pytest.raises(UserError, match="not a readable pool table"):
        mixture_summary(mixture, open_pool(tmp_path / "pool"))
