"""The benchmark suite file (``eval/benchmarks.yaml``): which (benchmark, task) pairs a judge is scored on.

Each entry is a dict with keys ``name`` (a registered source), ``task``, and optionally ``options``,
``split``, ``limit``: the shape `eval.score.BenchmarkSpec.from_dict` takes. `load_suite` checks names, tasks
and keys without reading any annotation file, so a typo fails before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_SUITE = Path(__file__).resolve().parent / "benchmarks.yaml"
ENTRY_KEYS = {"name", "options", "split", "task", "limit"}


def load_suite(path: str | Path = DEFAULT_SUITE) -> list[dict[str, Any]]:
    from judging.sources import SOURCES

    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty list under 'benchmarks:'")
    for index, entry in enumerate(entries):
        where = f"{path}: benchmarks[{index}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ValueError(f"{where}: expected a mapping with at least 'name', got {entry!r}")
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
        source = SOURCES.get(entry["name"])
        if source is None:
            raise ValueError(f"{where}: unknown benchmark {entry['name']!r}; known sources: {', '.join(sorted(SOURCES))}")
        task = entry.get("task", "query")
        if task not in source.tasks:
            raise ValueError(f"{where}: {entry['name']} has no task {task!r}; it supports {list(source.tasks)}")
        if not isinstance(entry.get("options", {}), dict):
            raise ValueError(f"{where}: 'options' must be a mapping, got {entry['options']!r}")
    return entries
