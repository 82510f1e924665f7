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
