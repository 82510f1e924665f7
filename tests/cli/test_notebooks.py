"""The walk-through notebook runs top to bottom on a real study, so it never rots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from paths_for_tests import REPO

NOTEBOOK = REPO / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_executes(make_job: Any, ray_session: Any, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    from ablate.config import to_dict
    from ablate.sweep import run_sweep

    job = make_job(design={"volumes": [100, 1000], "balance": [0.5, 1.0], "seeds": [0, 1]})
    run_sweep(job, list(job.task_types), progress=None)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(to_dict(job)))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    params.source = f"JOB = {str(job_file)!r}"
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "one-way ANOVA over mixtures" in text
    assert '"Less is more"' in text and "held-out Spearman" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert (tmp_path / "volume_balance.png").is_file()
    assert (tmp_path / "plots" / "heatmap.png").is_file()
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
