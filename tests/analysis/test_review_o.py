"""Review o: a researcher's workflow. `ablate plan` from a pilot of few degrees of freedom says
how uncertain its seed SD is (planned from the point estimate, a 1-df pilot promised 80% power
where 51% was measured); a mistyped pilot file and a plan before any sweep say what to give."""

from __future__ import annotations

from typing import Any

import pytest
from scipy.stats import chi2

from ablate.analysis.plan_seeds import pilot_noise, uncertain_sd
from ablate.errors import UserError


def test_a_pilot_of_few_df_gives_its_upper_bound() -> None:
    text = uncertain_sd(0.0054, 1)
    upper = 0.0054 * (1 / chi2.ppf(0.2, 1)) ** 0.5
    assert f"its 80% upper bound is {upper:.4g}" in text and f"`--noise {upper:.3g}`" in text
    assert upper > 3 * 0.0054  # one df: the SD may be several times the estimate
    assert uncertain_sd(0.03, 12) == ""


def test_plan_without_a_study_or_with_a_mistyped_pilot_says_what_to_give(make_job: Any) -> None:
    job = make_job()
    with pytest.raises(UserError, match=r"--pilot pilto\.yaml: no such file"):
        pilot_noise(job, "pilto.yaml")
    with pytest.raises(UserError) as err:
        pilot_noise(job, None)
    assert "To plan before any sweep, give --noise SD" in str(err.value)
