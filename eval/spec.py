"""The one benchmark spec type: which (benchmark, task) a judge is scored on, read from a suite file, a grid
file or a command line, with its cell ``key`` (file names, cache keys) and its display ``label``.

    spec = BenchmarkSpec(name="figstep", options={"subset": "tiny"})
    spec.key     # 'figstep__query__subset=tiny__font=FreeMonoBold.30b4b987'
    spec.label   # 'figstep (query) subset=tiny'

Specs are typed (`typed_config.StrictModel`): an unknown benchmark, a task it does not have, or a misspelt
key is one line naming the file and the key (``ConfigError``; commands exit 2) before any model is loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field, PositiveInt, model_validator

from typed_config import ConfigError, StrictModel, load_yaml, parse_config

DEFAULT_SUITE = Path(__file__).resolve().parent / "benchmarks.yaml"
# options that say where data is found, not which items are scored: left out of a benchmark's key and label
LOCATION_OPTIONS = ("image_root", "hub_endpoint", "benign_image_root", "font_file")


class BenchmarkSpec(StrictModel):
    """One (benchmark, task): a registered source, its options, split, task, an optional limit (the first
    ``limit`` items in the source's order, for smoke tests) and ``text_only`` (score every item without its
    image on purpose; the cell is labelled and keyed text-only)."""

    name: str
    task: str = "query"
    options: dict[str, Any] = Field(default_factory=dict)
    split: str = "test"
    limit: PositiveInt | None = None
    text_only: bool = False

    @model_validator(mode="after")
    def _known_source_and_task(self) -> BenchmarkSpec:
        from judging.sources import SOURCES

        source = SOURCES.get(self.name)
        if source is None:
            raise ValueError(f"unknown benchmark {self.name!r}; known sources: {', '.join(sorted(SOURCES))}")
        if self.task not in source.tasks:
            raise ValueError(f"{self.name} has no task {self.task!r}; it supports {list(source.tasks)}")
        return self

    @property
    def key(self) -> str:
        """The cell key: everything that selects the items and how they are shown, so that two settings of
        one benchmark (``subset: tiny`` vs the default, a text-only run) never share a file or a column.
        ``figstep__query__subset=tiny``; path-like option values appear as a short hash."""
        from judging.sources import SOURCES

        parts = [self.name, self.task]
        if self.split != "test":
            parts.append(self.split)
        parts += [f"{key}={_option_slug(value)}" for key, value in sorted(self.options.items())
                  if key not in LOCATION_OPTIONS]
        parts += SOURCES[self.name].key_parts(self.options)
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.text_only:
            parts.append("text-only")
        return "__".join(parts)

    @property
    def label(self) -> str:
        return benchmark_label(self.name, self.task, self.options, self.split)


class Suite(StrictModel):
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)


def benchmark_label(name: str, task: str, options: dict[str, Any] | None = None, split: str = "test") -> str:
    """A benchmark's name on a leaderboard or report: ``name (task)``, the split when not test, and the options
    that change which items are scored (``figstep (query) subset=tiny``). `BenchmarkSpec.label`; result files
    of benchmarks this process does not know are labelled by the same function."""
    shown = {key: value for key, value in sorted((options or {}).items()) if key not in LOCATION_OPTIONS}
    label = f"{name} ({task})" + (f" [{split}]" if split != "test" else "")
    return label + "".join(f" {key}={_short(value)}" for key, value in shown.items())


def parse_specs(entries: Any, *, source: str) -> list[BenchmarkSpec]:
    """Suite entries (a list of mappings; a bare string is a benchmark name) as checked specs."""
    return list(parse_config(Suite, {"benchmarks": _named(entries)}, source=source).benchmarks)


def load_suite(path: str | Path = DEFAULT_SUITE) -> list[BenchmarkSpec]:
    """The specs of a suite YAML (its ``benchmarks:`` list), or of a grid YAML (its ``benchmarks:`` list or the
    suite its ``suite:`` names)."""
    path = Path(path)
    data = load_yaml(path, what="suite or grid")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite is a mapping with a 'benchmarks:' list, got {type(data).__name__}")
    if "datasets" in data:  # a grid: its benchmark list or the suite it names
        if "benchmarks" in data:
            return parse_specs(data["benchmarks"], source=f"{path}: benchmarks")
        if "suite" in data:
            suite = Path(str(data["suite"]))
            return load_suite(suite if suite.is_absolute() else path.parent / suite)
        raise ConfigError(f"{path}: benchmarks: required key is missing (give 'benchmarks' or 'suite')")
    suite = parse_config(Suite, {**data, "benchmarks": _named(data.get("benchmarks"))} if "benchmarks" in data
                         else data, source=str(path))
    return list(suite.benchmarks)


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from the command line, the value read as a YAML scalar (``false`` -> False, ``3`` -> 3,
    ``[chat]`` -> a list), exactly as the same option written in a grid or suite YAML. Used by every CLI."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"--option {text!r}: the value is not a YAML scalar ({error})") from None


def _named(entries: Any) -> Any:
    return [{"name": e} if isinstance(e, str) else e for e in entries] if isinstance(entries, list) else entries


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.+-]{1,24}")


def _option_slug(value: Any) -> str:
    """A short, file-name-safe rendering of an option value for cell keys (a hash for paths and long values)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "+".join(str(item) for item in value)
    else:
        text = str(value)
    if _PLAIN_VALUE.fullmatch(text):
        return text
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_short(v)}" for k, v in sorted(value.items()) if k not in LOCATION_OPTIONS) + "}"
    if isinstance(value, (list, tuple)):
        return ",".join(_short(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)
