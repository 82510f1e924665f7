"""The import contract: ablate's layers import only downward, with no cycles (CI runs this).

Each module belongs to the first layer whose package prefix it has; a module may import its own
layer and the layers below it. Static analysis of every `import` in the source, those inside
functions included (an import inside a function must not dodge the contract), so it runs in
milliseconds and needs none of the heavy libraries.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ablate"

#: Bottom to top; the README's "Layout" section lists the same. `ablate.testing` (tiny models
#: for tests and benchmarks) sits on top: nothing of the product imports it.
LAYERS: list[tuple[str, ...]] = [
    ("ablate", "ablate.errors", "ablate.result", "ablate.registry"),
    ("ablate.config",),
    ("ablate.world",),
    ("ablate.pool",),
    ("ablate.mixture",),
    ("ablate.models", "ablate.bench"),
    ("ablate.trial",),
    ("ablate.objectives",),
    ("ablate.design",),
    ("ablate.search",),
    ("ablate.plan",),
    ("ablate.study",),
    ("ablate.tracking",),
    ("ablate.sweep",),
    ("ablate.analysis",),
    ("ablate.demo",),
    ("ablate.cli",),
    ("ablate.testing",),
]
#: Modules whose functions may import ablate's own modules: each command loads its stage when it
#: runs, so `ablate --help` does not import numpy, pyarrow, Optuna or Ray.
LAZY_IMPORTERS = ("ablate.cli",)
#: Third-party libraries only one place may import.
OWNERS = {"ray": ("ablate.sweep.workers",), "mlflow": ("ablate.tracking",)}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _layer(module: str) -> int:
    best = -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "ablate" and module != "ablate":
                continue
            if module == prefix or module.startswith(prefix + "."):
                best = i
    assert best >= 0, f"{module} is in no layer: add it to LAYERS (and the README's layout)"
    return best


def _target(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if MODULES[module].name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _imports() -> list[tuple[str, str, int, bool]]:
    """(importer, imported module, line, inside a function) for every import in ablate."""
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nested = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
            for n in ast.walk(f)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _target(module, node)
                names = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in node.names
                ]
            else:
                continue
            for name in names:
                out.append((module, name, node.lineno, id(node) in nested))
    return out


IMPORTS = _imports()


def _own(name: str) -> str | None:
    """The ablate module an import names (its longest known prefix), or None if third-party."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_imports_only_go_down() -> None:
    upward = []
    for importer, name, line, _ in IMPORTS:
        target = _own(name)
        if target is None or target == importer:
            continue
        if _layer(target) > _layer(importer):
            upward.append(
                f"{MODULES[importer]}:{line} {importer} imports {target} (a higher layer)"
            )
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, name, _, _ in IMPORTS:
        target = _own(name)
        if target is not None and target != importer:
            graph[importer].add(target)
    # Tarjan's strongly connected components: any component of 2+ modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package and its own modules import each other by design (re-exports)
            roots = {c for c in component if not any(c.startswith(o + ".") for o in component)}
            if len(component) > 1 and len(roots) > 1:
                cycles.append(sorted(component))

    for v in list(MODULES):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_function_level_imports_of_ablate_only_in_the_cli() -> None:
    found = [
        f"{MODULES[importer]}:{line} imports {_own(name)} inside a function"
        for importer, name, line, nested in IMPORTS
        if nested and _own(name) is not None and not importer.startswith(LAZY_IMPORTERS)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_one_module_imports_each_service_library(library: str) -> None:
    owners = OWNERS[library]
    found = [
        f"{MODULES[importer]}:{line}"
        for importer, name, line, _ in IMPORTS
        if (name == library or name.startswith(library + ".")) and not importer.startswith(owners)
    ]
    assert not found, f"{library} is imported outside {owners}: {found}"


def test_package_init_files_only_re_export() -> None:
    """A package's `__init__.py` holds a docstring, imports and `__all__`, nothing else."""
    bad = []
    for path in MODULES.values():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            if isinstance(node, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in ("__all__", "__version__") for t in node.targets
            ):
                continue
            bad.append(f"{path}:{node.lineno}")
    assert not bad, f"logic in package __init__ files: {bad}"


def test_module_and_function_sizes() -> None:
    """Modules of at most ~450 lines and functions of at most ~60, unless a comment says why
    (`# long: <reason>` on the def line or the line above it)."""
    too_long = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 450 and not any("# long module:" in line for line in lines[:30]):
            too_long.append(f"{path}: {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
                n = (node.end_lineno or node.lineno) - start
                why = " ".join(lines[max(0, start - 1) : node.lineno])
                if n > 60 and "# long:" not in why:
                    too_long.append(f"{path}:{node.lineno} {node.name}: {n} lines")
    assert not too_long, "\n".join(too_long)
