"""YAML files -> frozen dataclasses, with `--set a.b=c` overrides and precise errors.

Every user-facing file (job, mixture, bench) goes through `read_yaml` + `build`, so an unknown
key, a wrong type or a missing value fails the same way: the file, the dotted key, what is
wrong and what would fix it, before any compute is spent.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from ablate.config.paths import redact
from ablate.errors import UserError, did_you_mean

T = TypeVar("T")


def read_yaml(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping and apply `key.sub=value` overrides (values parsed as YAML)."""
    import yaml

    path = Path(path)
    if path.is_dir():  # (it said "no such file" of a folder that is there; review q#14)
        yamls = ", ".join(sorted(p.name for p in path.glob("*.y*ml"))[:3]) or "none"
        raise UserError(
            f"{path}: is a folder, not a YAML file; give a file (YAML files there: {yamls})"
        )
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}{_yaml_problem(err)}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (not UTF-8); expected a YAML file") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: expected a mapping of keys at the top level, found {type(data).__name__}"
        )
    for item in overrides:
        apply_override(data, item, path)
    return data


def apply_override(data: dict[str, Any], item: str, path: str | Path = "--set") -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (`1e-3`, `[1, 2]`)."""
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(
            f"--set {redact(item)!r}: expected KEY=VALUE, for example --set train.lr=1e-3"
        )
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(
                f"{path}: --set {redact(item)!r}: `{part}` is not a mapping, cannot set `{key}`"
            )
        node = child
    if not raw.strip():  # (it read as null, then blamed on the file: "`study` must be a string")
        raise UserError(f"--set {redact(item)}: empty value; give one (or null to clear the key)")
    try:
        node[parts[-1]] = yaml.load(raw, Loader=_loader())
    except yaml.YAMLError as err:
        if raw.lstrip()[:1] in "[{":  # a list or mapping meant: never a plain string
            problem = _yaml_problem(err).split(": not valid YAML: ", 1)[-1]
            raise UserError(
                f"--set {redact(item)}: the value is not valid YAML ({problem}); fix it or quote it"
            ) from None
        node[parts[-1]] = raw  # `@x`, `%x`: a string, as meant


def blame_overrides(err: UserError, path: str | Path, overrides: typing.Sequence[str]) -> Any:
    """`err` about a key a `--set` gave, said of that option rather than of the file (which
    was fine, and searched for nothing); any other error as it is."""
    text, head = str(err), f"{path}: "
    if not text.startswith(head):
        return err
    for item in reversed(overrides):  # (the last `--set` of a key is the one that counts)
        key = item.partition("=")[0].strip()
        if re.search(rf"`{re.escape(key)}[`\[.]", text):
            return UserError(f"--set {redact(item)} (over {path}): {text[len(head) :]}")
    return err


_FLOAT_WITHOUT_DOT = r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"
"""`1e-3`, `5E4`, `2.2e9`: floats in YAML 1.2 (and to every reader), strings to PyYAML's YAML
1.1 (which wants a dot and a signed exponent: `2.2e+9`)."""


@functools.cache
def _yaml_problem(err: Any) -> str:
    """`:LINE:COLUMN: not valid YAML: PROBLEM` on one line (PyYAML's own text spans several,
    with a caret drawing and `<unicode string>` where the file's name belongs)."""
    mark = getattr(err, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    return f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def _loader() -> type:
    """PyYAML's safe loader, also reading `1e-3` as a float (as `--set train.lr=1e-3` means)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            # a key given twice: PyYAML keeps the last silently; which one was meant is a guess
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key `{key}` appears twice (lines {seen[key]} and {line})",
                        key_node.start_mark,
                    )  # fmt: skip
                seen[key] = line
            return super().construct_mapping(node, deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(_FLOAT_WITHOUT_DOT), list("-+0123456789.")
    )
    return Loader


def build(cls: type[T], data: Any, source: str | Path, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key and type against its fields."""
    where = f"{source}: `{prefix.rstrip('.')}`" if prefix else str(source)
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, found {data!r}")
    hints = typing.get_type_hints(cls)
    known = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and not f.metadata.get("internal")  # set by the loader, not by the file
    }
    for key in data:
        if key not in known:
            hint = did_you_mean(key, known, prefix)
            raise UserError(
                f"{source}: unknown key `{prefix}{key}`{hint}; known keys here: {', '.join(sorted(known))}"
            )
    kwargs: dict[str, Any] = {}
    for name, fld in known.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], source, f"{prefix}{name}")
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise UserError(f"{source}: missing required key `{prefix}{name}`")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str | Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(args, value, source, key)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, source, prefix=f"{key}.")  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise UserError(f"{source}: `{key}` must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: `{key}` must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        check_colon_keys(value, source, key)
        return {str(k): _coerce(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserError(f"{source}: `{key}` must be a number, got {value!r}")
        if not math.isfinite(value):  # YAML's .inf and .nan (a 1e999 is inf too)
            raise UserError(f"{source}: `{key}` must be a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{source}: `{key}` must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise UserError(f"{source}: `{key}` must be true or false, got {value!r}")
        return value
    if hint is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise UserError(f"{source}: `{key}` must be a string, got {value!r}")
        return str(value)
    if origin is typing.Literal:
        if value not in args:
            raise UserError(
                f"{source}: `{key}` must be one of {', '.join(map(str, args))}; got {value!r}"
            )
        return value
    return value


def _coerce_union(args: tuple[Any, ...], value: Any, source: str | Path, key: str) -> Any:
    """The first member type of a union that takes `value`; else the error that says most."""
    if value is None and type(None) in args:
        return None
    errors, shaped = [], ""
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _coerce(arg, value, source, key)
        except UserError as err:
            errors.append(str(err))
            if isinstance(value, dict) and typing.get_origin(arg) is dict:
                shaped = str(err)  # a mapping given for `int | dict`: the mapping's fault
    raise UserError(
        shaped
        or (errors[-1] if len(errors) == 1 else f"{source}: `{key}` has an invalid value {value!r}")
    )


def check_colon_keys(value: dict[Any, Any], source: str | Path, key: str) -> None:
    """`{ocr:0.1}` (no space after the colon) is YAML for the key `ocr:0.1` with no value."""
    for k, v in value.items():
        name, colon, after = str(k).partition(":")
        if v is None and colon and after.strip():
            raise UserError(
                f"{source}: `{key}.{k}` has no value: without a space after the colon "
                f"YAML reads `{k}` as one key; write `{{{name.strip()}: {after.strip()}}}`"
            )


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML-able data, dropping fields marked `internal`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.metadata.get("internal")
        }
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
