"""Check a benchmark suite's annotations and images before any model is loaded, and list the registered
benchmarks.

    python -m eval.benchmarks                                   # check the default suite
    python -m eval.benchmarks --suite my_suite.yaml --show-missing 5
    python -m eval.benchmarks --benchmark siuo --task response --option image_root=/data/siuo

    python -m eval.benchmarks fetch [NAMES]                     # download from the Hub (eval.fetch; --help)

The check prints, per entry, the items by label, images found / missing and items excluded by an option; exits 1 when
an entry cannot be read (its error is printed, the other entries are still checked). Suite entries are
`eval.spec.BenchmarkSpec`s (`eval.spec.load_suite`): a typo fails with one line naming the file and the key.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from eval.spec import DEFAULT_SUITE, BenchmarkSpec, load_suite, parse_option, parse_specs
from rms_dataset import SAFE, UNSAFE
from typed_config import ConfigError


def check_entry(spec: BenchmarkSpec) -> tuple[dict[str, Any], list[str], list[str]]:
    """Read one suite entry's examples: (row of counts, missing image paths, notes on the published data)."""
    from judging.sources import get_source

    source = get_source(spec.name, **spec.options)
    task = spec.task
    labels = Counter(example.label for example in source.examples(spec.split, task))
    report = source.report
    row = {
        "benchmark": spec.name, "task": task, "items": report.n_examples,
        "safe": labels["safe"], "unsafe": labels["unsafe"], "images found": report.n_images_found,
        "missing": report.n_missing_images,
        "excluded": ", ".join(f"{k} {v}" for k, v in sorted(report.excluded.items())) or "-",
    }
    return row, report.missing_images, list(getattr(report, "notes", []))


def list_benchmarks() -> list[str]:
    """One line per registered benchmark: tasks, items and classes with default options, images present."""
    from eval.loading import load_benchmark
    from judging.sources import SOURCES

    lines = ["| benchmark | tasks | items (test, first task) | unsafe / safe | images present |", "|---|---|---|---|---|"]
    for name, source in sorted(SOURCES.items()):
        try:
            loaded = load_benchmark(BenchmarkSpec(name=name, task=source.tasks[0]))
        except Exception as error:  # a benchmark with no local annotations: say why, list the rest
            lines.append(f"| {name} | {', '.join(source.tasks)} | not available here: {str(error).splitlines()[0]} | | |")
            continue
        counts = loaded.provenance["n_by_label"]
        with_image = sum(example.image is not None for example in loaded.examples)
        lines.append(f"| {name} | {', '.join(source.tasks)} | {len(loaded.examples)} | {counts[UNSAFE]} / {counts[SAFE]} "
                     f"| {with_image} of {len(loaded.examples)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:
        from eval.fetch import main as fetch

        return fetch(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m eval.benchmarks",
                                     description="Check a benchmark suite's annotations and images before scoring.",
                                     epilog="`python -m eval.benchmarks fetch --help`: download benchmarks from the Hub.")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="suite YAML (default: eval/benchmarks.yaml)")
    parser.add_argument("--benchmark", help="check this one benchmark instead of a suite")
    parser.add_argument("--task", default="query", help="task for --benchmark (query or response)")
    parser.add_argument("--option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="source option for --benchmark, e.g. image_root=/data/siuo (repeatable; YAML values)")
    parser.add_argument("--show-missing", type=int, default=0, metavar="N", help="list the first N missing images")
    args = parser.parse_args(argv)
    try:
        if args.benchmark:
            entries = parse_specs([{"name": args.benchmark, "task": args.task, "options": dict(args.option)}],
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
            failures.append(f"{entry.name} ({entry.task}): {error}")
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
