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
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: {what} is not valid YAML{line}: {problem}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (plain YAML keeps the last one,
    silently dropping the first value)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first_line.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: the base class says what is wrong with it
                    continue
                if line != key_node.start_mark.line + 1:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given at line {line}); keep one of them",
                        key_node.start_mark)
        return super().construct_mapping(node, deep)


def _describe(model: type[BaseModel], problem: dict, source: str) -> str:
    location = problem["loc"]
    shown, _ = _walk(model, location)
    key = ".".join(shown) or "(top level)"
    if problem["type"] == "extra_forbidden":
        allowed = _fields_at(model, location[:-1])
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{source}: {key}: unknown key{hint}"
    if problem["type"] == "missing":
        return f"{source}: {key}: required key is missing"
    given = problem.get("input")
    shown_value = f" (got {given!r:.80})" if not isinstance(given, (dict, list)) and not _is_secret(shown) else ""
    message = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]  # no "Value error, "
    return f"{source}: {key}: {message}{shown_value}"


def _is_secret(location: list[str]) -> bool:
    """A value under ``headers`` or a credential-named key is never echoed in an error."""
    from modelcalls.redact import is_secret_name

    return any(part.lower() == "headers" or is_secret_name(part) for part in location)


def _walk(model: type[BaseModel], location: tuple) -> tuple[list[str], Any]:
    """``location`` as the user wrote it (the tags pydantic inserts for a tagged union, e.g. the
    ``openai`` of ``generator.openai.base_url``, dropped) and the annotation it leads to (None if unknown)."""
    shown: list[str] = []
    current: Any = model
    for part in location:
        member = _tagged_member(current, part)
        if member is not None:
            current = member
            continue
        shown.append(str(part))
        current = _child(current, part)
    return shown, current


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _tagged_member(annotation: Any, tag: Any) -> Any:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    for member in typing.get_args(annotation):
        if typing.get_origin(member) is typing.Annotated:
            if any(getattr(meta, "tag", None) == tag for meta in member.__metadata__):
                return typing.get_args(member)[0]
    return None


def _child(annotation: Any, part: Any) -> Any:
    found = _model_in(annotation)
    if isinstance(part, str) and found is not None and part in found.model_fields:
        return found.model_fields[part].annotation
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, dict):
        return typing.get_args(annotation)[-1] if typing.get_args(annotation) else None
    if origin in (typing.Union, types.UnionType):  # Optional[list[...]] and the like: follow the non-None member
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        return _child(members[0], part) if len(members) == 1 else None
    return None


def _fields_at(model: type[BaseModel], location: tuple) -> list[str]:
    """The field names of the (nested) model that ``location`` leads to from ``model``; [] when it does not
    lead to a model (a dict of free keys, an untagged union we cannot follow)."""
    _, annotation = _walk(model, location)
    found = _model_in(annotation)
    return sorted(found.model_fields) if found is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for argument in reversed(typing.get_args(annotation)):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
