"""Name -> factory tables for every extension point: designs, samplers, scorers, surrogates,
objective kinds and sim landscapes.

Each extension point owns one `Registry`; an extension is one module that decorates its factory
with `@REGISTRY.register("name")`. The registry imports every module of its `package` the first
time it is read, so a new file in that folder is found without editing any list (the same idea
as entry points, inside the package). Unknown names fail with a did-you-mean `UserError` that
names the YAML key.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from ablate.errors import UserError, did_you_mean

F = TypeVar("F")


class Registry(Generic[F]):
    """An ordered table `name -> factory` for one extension point."""

    def __init__(self, what: str, key: str, package: str | None = None) -> None:
        self.what = what
        """What an entry is, in words (`design kind`)."""
        self.key = key
        """The YAML key that names an entry (`design.kind`), for error messages."""
        self.package = package
        """A package whose every module is imported before the first lookup (its plugins)."""
        self._entries: dict[str, F] = {}
        self._discovered = package is None

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: `@DESIGNS.register("grid")` above the factory."""

        def add(factory: F) -> F:
            if name in self._entries and self._entries[name] is not factory:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = factory
            return factory

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register their own kinds clean up with this)."""
        self._entries.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        assert self.package is not None
        package = importlib.import_module(self.package)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        # only once every module imported: a failed import is raised again on the next lookup
        # instead of leaving a half-filled table
        self._discovered = True

    def names(self) -> list[str]:
        """Every registered name: the built-ins (modules of `package`) first, then those a job's
        plugins or a test registered, each group in registration order."""
        self._discover()
        inside = f"{self.package}."
        builtin = [n for n, f in self._entries.items() if _module_of(f).startswith(inside)]
        return builtin + [n for n in self._entries if n not in builtin]

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str, source: str = "", also: Sequence[str] = (), key: str = "") -> F:
        """The factory registered as `name`; a UserError with the closest names otherwise.
        `also`: names the key accepts besides the registered ones (handled by the caller, such
        as `design.kind: search`), offered in the error too; `key`: the job key that named it
        when not the registry's own (`design.warm_start` names a design kind too)."""
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            pass
        names = [*self._entries, *also]
        hint = did_you_mean(name, names)
        where = f"{source}: " if source else ""
        raise UserError(
            f"{where}`{key or self.key}` {name!r} is not a known {self.what}{hint}; "
            f"choose one of {', '.join(names)}"
        ) from None


def _module_of(factory: object) -> str:
    return str(getattr(factory, "__module__", "") or "")


def import_failure(name: str, err: BaseException) -> str:
    """Why module `name` cannot be imported, and the fix: a module of the user's own that is
    not on the import path (Python looks in neither the job's folder nor, for an installed
    command, the current one) is put there with PYTHONPATH, which Ray's local workers inherit."""
    why = f"{type(err).__name__}: {err}"
    if isinstance(err, ModuleNotFoundError) and err.name == name.split(".")[0]:
        return (
            f"{why}; a module of your own must be on the import path: run from its folder with "
            f"`PYTHONPATH=. ablate ...` (on a cluster, ship it with `ray job submit "
            f"--working-dir`); searched {', '.join(sys.path[:4])}, ..."
        )
    return why  # the module was found and failed while importing: its own error says why


def import_plugins(modules: tuple[str, ...] | list[str], source: str = "") -> None:
    """Import a job's `plugins` (modules that register extensions of their own); a module that
    cannot be imported is a UserError naming it and the search path."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:
            where = f"{source}: " if source else ""
            raise UserError(
                f"{where}`plugins` names module `{name}`, which cannot be imported "
                f"({import_failure(name, err)})"
            ) from None
