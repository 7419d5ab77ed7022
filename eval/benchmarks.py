"""The benchmark suite file (``eval/benchmarks.yaml``): which (benchmark, task) pairs a judge is scored on,
and a check of a suite's data before any model is loaded.

Each entry is a dict with keys ``name`` (a registered source), ``task``, and optionally ``options``,
``split``, ``limit``: the shape `eval.score.BenchmarkSpec.from_dict` takes. `load_suite` checks names, tasks
and keys without reading any annotation file, so a typo fails before any model is loaded.

    python -m eval.benchmarks                                   # check the default suite
    python -m eval.benchmarks --suite my_suite.yaml --show-missing 5
    python -m eval.benchmarks --benchmark siuo --task response --option image_root=/data/siuo

prints, per entry, the items by label, images found / missing and items excluded by an option; exits 1 when
an entry cannot be read (its error is printed, the other entries are still checked).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
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


def check_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Read one suite entry's examples: (row of counts, missing image paths)."""
    from judging.sources import get_source

    source = get_source(entry["name"], **entry.get("options", {}))
    task = entry.get("task", "query")
    labels = Counter(example.label for example in source.examples(entry.get("split", "test"), task))
    report = source.report
    row = {
        "benchmark": entry["name"], "task": task, "items": report.n_examples,
        "safe": labels["safe"], "unsafe": labels["unsafe"], "images found": report.n_images_found,
        "missing": report.n_missing_images,
        "excluded": ", ".join(f"{k} {v}" for k, v in sorted(report.excluded.items())) or "-",
    }
    return row, report.missing_images


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.benchmarks",
                                     description="Check a benchmark suite's annotations and images before scoring.")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="suite YAML (default: eval/benchmarks.yaml)")
    parser.add_argument("--benchmark", help="check this one benchmark instead of a suite")
    parser.add_argument("--task", default="query", help="task for --benchmark (query or response)")
    parser.add_argument("--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="source option for --benchmark, e.g. image_root=/data/siuo (repeatable; YAML values)")
    parser.add_argument("--show-missing", type=int, default=0, metavar="N", help="list the first N missing images")
    args = parser.parse_args(argv)
    if args.benchmark:
        entries = [{"name": args.benchmark, "task": args.task, "options": dict(args.option)}]
    else:
        entries = load_suite(args.suite)
    columns = ("benchmark", "task", "items", "safe", "unsafe", "images found", "missing", "excluded")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    failures = []
    for entry in entries:
        try:
            row, missing = check_entry(entry)
        except Exception as error:  # report and go on: one bad entry should not hide the others' state
            failures.append(f"{entry['name']} ({entry.get('task', 'query')}): {error}")
            continue
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
        for path in missing[: args.show_missing]:
            print(f"    missing: {path}")
    for failure in failures:
        print(f"ERROR {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
