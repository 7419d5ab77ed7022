"""Typed configs at the boundaries: every YAML or CLI mapping the toolkit reads (run configs, recipes, grids,
suites, judge specs) is a pydantic model validated through ``parse_config``, so a bad value becomes one
line per problem naming the source, the key and what is allowed, never a traceback or a silently wrong run.

    class Backend(StrictModel):
        backend: Literal["openai", "transformers", "scripted"]
        concurrency: PositiveInt = 8

    config = parse_config(Backend, data, source="run.yaml: generator")   # raises ConfigError

Command lines catch ``ConfigError``, print it and exit 2 (a usage error). Models are strict: ``"8"`` is not
an int and an unknown key is an error listing the allowed ones (a misspelt key must not be ignored).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config or command-line value is not usable. ``str(error)`` is the whole message (one line per
    problem); command lines print it and exit 2."""


class StrictModel(BaseModel):
    """Base of every typed config: unknown keys are errors, values are not coerced across types (a YAML
    string never silently becomes a number), and instances are immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def parse_config(model: type[M], data: Any, *, source: str) -> M:
    """``data`` validated as ``model``; a ``ConfigError`` naming ``source`` and every bad key otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError("\n".join(_describe(model, problem, source) for problem in error.errors())) from None


def load_yaml(path: str | Path, *, what: str = "config") -> Any:
    """The parsed YAML document at ``path``; a ``ConfigError`` if it is missing, unreadable or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: {what} is not valid YAML{line}: {problem}") from None


def _describe(model: type[BaseModel], problem: dict, source: str) -> str:
    location = problem["loc"]
    key = ".".join(str(part) for part in location) or "(top level)"
    if problem["type"] == "extra_forbidden":
        allowed = _fields_at(model, location[:-1])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{source}: {key}: unknown key{hint}"
    if problem["type"] == "missing":
        return f"{source}: {key}: required key is missing"
    given = problem.get("input")
    shown = f" (got {given!r:.80})" if not isinstance(given, (dict, list)) else ""
    return f"{source}: {key}: {problem['msg']}{shown}"


def _fields_at(model: type[BaseModel], location: tuple) -> list[str]:
    """The field names of the (nested) model found by following ``location`` from ``model``; [] when the
    location does not lead to a model (a dict of free keys, a union we cannot follow)."""
    current: Any = model
    for part in location:
        current = _model_in(current)
        if current is None:
            return []
        if isinstance(part, str) and part in current.model_fields:
            current = current.model_fields[part].annotation
        elif not isinstance(part, str) or part not in current.model_fields:
            continue  # list index or dict key: stay on the element type, unwrapped below
    found = _model_in(current)
    return sorted(found.model_fields) if found is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict, typing.Annotated):
        for argument in reversed(typing.get_args(annotation)):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
