"""The benchmark suite file (``eval/benchmarks.yaml``): which (benchmark, task) pairs a judge is scored on,
and a check of a suite's data before any model is loaded.

Each entry is a `SuiteEntry` (typed, via ``typed_config``): ``name`` (a registered source), ``task``, and
optionally ``options``, ``split``, ``limit``; the fields of `eval.score.BenchmarkSpec`. `load_suite` checks
names, tasks and keys without reading any annotation file, so a typo fails before any model is loaded, with
one line naming the file and the key (``ConfigError``; the command exits 2).

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

from pydantic import Field, PositiveInt, model_validator

from typed_config import ConfigError, StrictModel, load_yaml, parse_config

DEFAULT_SUITE = Path(__file__).resolve().parent / "benchmarks.yaml"
# options that say where images are, not which items are scored: left out of a benchmark's label
LOCATION_OPTIONS = ("image_root", "hub_endpoint", "benign_image_root", "font_file")


class SuiteEntry(StrictModel):
    """One (benchmark, task) of a suite or grid: a registered source, its options, split, task, an optional
    limit (the first ``limit`` items in the source's order, for smoke tests) and ``text_only`` (score without
    images on purpose; eval.score labels such cells)."""

    name: str
    task: str = "query"
    options: dict[str, Any] = Field(default_factory=dict)
    split: str = "test"
    limit: PositiveInt | None = None
    text_only: bool = False

    @model_validator(mode="after")
    def _known_source_and_task(self) -> SuiteEntry:
        from judging.sources import SOURCES

        source = SOURCES.get(self.name)
        if source is None:
            raise ValueError(f"unknown benchmark {self.name!r}; known sources: {', '.join(sorted(SOURCES))}")
        if self.task not in source.tasks:
            raise ValueError(f"{self.name} has no task {self.task!r}; it supports {list(source.tasks)}")
        return self


class Suite(StrictModel):
    benchmarks: list[SuiteEntry] = Field(min_length=1)


def parse_entries(entries: Any, *, source: str) -> list[dict[str, Any]]:
    """Suite entries (a list of mappings; a bare string is a benchmark name) checked as `SuiteEntry` and
    returned as plain dicts with every key filled in."""
    return [entry.model_dump() for entry in parse_config(Suite, {"benchmarks": _named(entries)}, source=source).benchmarks]


def load_suite(path: str | Path = DEFAULT_SUITE) -> list[dict[str, Any]]:
    data = load_yaml(path, what="benchmark suite")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a suite is a mapping with a 'benchmarks:' list, got {type(data).__name__}")
    suite = parse_config(Suite, {**data, "benchmarks": _named(data.get("benchmarks"))} if "benchmarks" in data else data,
                         source=str(path))
    return [entry.model_dump() for entry in suite.benchmarks]


def _named(entries: Any) -> Any:
    return [{"name": e} if isinstance(e, str) else e for e in entries] if isinstance(entries, list) else entries


def benchmark_label(name: str, task: str, options: dict[str, Any] | None = None, split: str = "test") -> str:
    """A benchmark's name on a leaderboard or report: ``name (task)``, the split when not test, and the options
    that change which items are scored (``figstep (query) subset=tiny``)."""
    shown = {key: value for key, value in sorted((options or {}).items()) if key not in LOCATION_OPTIONS}
    label = f"{name} ({task})" + (f" [{split}]" if split != "test" else "")
    return label + "".join(f" {key}={_short(value)}" for key, value in shown.items())


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_short(v)}" for k, v in sorted(value.items()) if k not in LOCATION_OPTIONS) + "}"
    if isinstance(value, (list, tuple)):
        return ",".join(_short(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_entry(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Read one suite entry's examples: (row of counts, missing image paths, notes on the published data)."""
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
    return row, report.missing_images, list(getattr(report, "notes", []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.benchmarks",
                                     description="Check a benchmark suite's annotations and images before scoring.")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="suite YAML (default: eval/benchmarks.yaml)")
    parser.add_argument("--benchmark", help="check this one benchmark instead of a suite")
    parser.add_argument("--task", default="query", help="task for --benchmark (query or response)")
    from eval.score import parse_option  # the one --option parser of every CLI (YAML values)

    parser.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="source option for --benchmark, e.g. image_root=/data/siuo (repeatable; YAML values)")
    parser.add_argument("--show-missing", type=int, default=0, metavar="N", help="list the first N missing images")
    args = parser.parse_args(argv)
    try:
        if args.benchmark:
            entries = parse_entries([{"name": args.benchmark, "task": args.task, "options": dict(args.option)}],
                                    source="command line")
        else:
            entries = load_suite(args.suite)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    columns = ("benchmark", "task", "items", "safe", "unsafe", "images found", "missing", "excluded")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    failures = []
    for entry in entries:
        try:
            row, missing, notes = check_entry(entry)
        except Exception as error:  # report and go on: one bad entry should not hide the others' state
            failures.append(f"{entry['name']} ({entry.get('task', 'query')}): {error}")
            continue
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
        for path in missing[: args.show_missing]:
            print(f"    missing: {path}")
        for note in notes:
            print(f"    note: {note}")
    for failure in failures:
        print(f"ERROR {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
