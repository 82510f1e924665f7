"""The name -> factory tables behind every extension point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ablate.errors import UserError
from ablate.registry import Registry


def test_names_lookup_and_did_you_mean() -> None:
    reg: Registry[int] = Registry("colour", "paint.colour")
    reg.register("red")(1)
    reg.register("green")(2)
    assert reg.names() == ["red", "green"] and "red" in reg and reg.get("green") == 2
    with pytest.raises(UserError) as err:
        reg.get("gren", "job.yaml")
    assert str(err.value) == (
        "job.yaml: `paint.colour` 'gren' is not a known colour (did you mean `green`?); "
        "choose one of red, green"
    )
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("red")(3)
    reg.unregister("red")
    assert reg.names() == ["green"]


def test_plugins_package_is_discovered_and_a_broken_module_is_not_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "demo_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text("from registry_host import REG\nREG.register('alpha')(1)\n")
    (pkg / "beta.py").write_text("raise RuntimeError('broken plugin')\n")
    (pkg / "_private.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "registry_host.py").write_text(
        "from ablate.registry import Registry\nREG = Registry('thing', 'thing', package='demo_plugins')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from registry_host import REG  # type: ignore[import-not-found]

        for _ in range(2):  # the failure repeats: the table is never left half-filled
            with pytest.raises(RuntimeError, match="broken plugin"):
                REG.names()
        (pkg / "beta.py").write_text("from registry_host import REG\nREG.register('beta')(2)\n")
        sys.modules.pop("demo_plugins.beta", None)
        assert REG.names() == ["alpha", "beta"]
    finally:
        for name in [m for m in sys.modules if m.startswith(("demo_plugins", "registry_host"))]:
            del sys.modules[name]
