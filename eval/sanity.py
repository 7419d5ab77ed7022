"""Check that a benchmark suite's dataset score cannot be won by a trivial judge.

    python -m eval.sanity                                   # the default suite, eval/benchmarks.yaml
    python -m eval.sanity --suite eval/configs/grid_tiny.yaml --per-benchmark

scores the sanity judges (eval/judges/sanity.py: constant:unsafe, constant:safe, random:0, oracle:0.9:0) on
every benchmark of the suite, per judge task, and prints one line per judge with its dataset score and 95%
interval (``constant:unsafe  0.500 [0.499, 0.501]``). The judges read no images and load no model, so this
takes seconds. Exit status 1 when the property fails: every constant and the random judge within
``--tolerance`` (0.05) of 0.5, the oracle within it of its accuracy, and the oracle above the random judge
and the constants. A suite (or a grid YAML, whose benchmarks are read) that cannot be read exits 2.
Single-class entries are listed as not counted: the score never counts a benchmark with one class.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from eval.judges import Judge, make_judge
from eval.judges.sanity import STANDARD, OracleJudge, is_sanity_kind, make_sanity_judge
from eval.metrics import compute_metrics
from eval.metrics.dataset_score import ClassCounts, DatasetScore, dataset_score
from eval.spec import DEFAULT_SUITE, BenchmarkSpec, load_suite
from typed_config import ConfigError

TOLERANCE = 0.05


@dataclass(frozen=True)
class SuiteBenchmark:
    label: str
    task: str
    examples: list
    single_class: str | None


@dataclass(frozen=True)
class SanityRow:
    judge: str
    task: str
    score: DatasetScore


def load_benchmarks(specs: list[BenchmarkSpec]) -> list[SuiteBenchmark]:
    """Every spec's examples through `eval.loading.load_benchmark` (labels are all the sanity judges need;
    images are not opened, so missing ones do not matter here)."""
    from eval.loading import load_benchmark

    loaded = []
    for spec in specs:
        benchmark = load_benchmark(spec)
        single_class = benchmark.single_class
        labels = {example.label for example in benchmark.examples}
        if len(labels) == 1:  # e.g. a limit that cut off the other class
            single_class = labels.pop()
        loaded.append(SuiteBenchmark(spec.label, spec.task, benchmark.examples, single_class))
    return loaded


def score_judge(judge: Judge, benchmarks: list[SuiteBenchmark], *, seed: int = 0) -> DatasetScore:
    counts = []
    for benchmark in benchmarks:
        if benchmark.single_class is not None:
            continue
        predictions = [p.label for p in judge.score(benchmark.examples)]
        metrics = compute_metrics(predictions, [e.label for e in benchmark.examples], n_bootstrap=0)
        counts.append(ClassCounts.from_metrics(benchmark.label, metrics))
    return dataset_score(counts, seed=seed)


def coin_sd(benchmarks: list[SuiteBenchmark]) -> float:
    """Standard deviation of a fair coin's dataset score on these benchmarks: sqrt(sum over benchmarks of
    (1/4)(1/(4 n_unsafe) + 1/(4 n_safe))) / k. A suite where it is near the tolerance cannot tell a coin from
    a weak judge."""
    variance = 0.0
    for benchmark in benchmarks:
        n_unsafe = sum(example.label == "unsafe" for example in benchmark.examples)
        n_safe = len(benchmark.examples) - n_unsafe
        variance += (0.25 / n_unsafe + 0.25 / n_safe) / 4
    return variance ** 0.5 / len(benchmarks)


def property_failures(rows: list[SanityRow], tolerance: float = TOLERANCE) -> list[str]:
    """What is wrong with a task's sanity rows (empty: the score has its floor at chance)."""
    failures = []
    rows = [row for row in rows if is_sanity_kind(row.judge)]  # callable judges are printed, not checked
    for row in rows:
        value = row.score.value
        if value is None:
            failures.append(f"{row.task}: {row.judge}: no benchmark with both classes to score")
            continue
        judge = make_sanity_judge(row.judge)
        target = judge.accuracy if isinstance(judge, OracleJudge) else 0.5
        if abs(value - target) > tolerance:
            failures.append(f"{row.task}: {row.judge} scores {value:.3f}, expected {target:g} +- {tolerance:g}")
    judges = {row.judge: make_sanity_judge(row.judge) for row in rows}
    informed = [row for row in rows if isinstance(judges[row.judge], OracleJudge)
                and judges[row.judge].accuracy > 0.5 + tolerance]
    floors = [row for row in rows if not isinstance(judges[row.judge], OracleJudge)]
    for oracle in informed:
        for floor in floors:
            if None not in (oracle.score.value, floor.score.value) and not oracle.score.value > floor.score.value:
                failures.append(f"{oracle.task}: {oracle.judge} ({oracle.score.value:.3f}) does not beat "
                                f"{floor.judge} ({floor.score.value:.3f})")
    return failures


def run(specs: list[BenchmarkSpec], judges: list[str], *, seed: int = 0) -> tuple[dict[str, list[SanityRow]],
                                                                                      dict[str, list[SuiteBenchmark]]]:
    benchmarks = load_benchmarks(specs)
    tasks = sorted({benchmark.task for benchmark in benchmarks})
    by_task = {task: [b for b in benchmarks if b.task == task] for task in tasks}
    built = {kind: make_judge({"kind": kind}) for kind in judges}
    rows = {task: [SanityRow(kind, task, score_judge(built[kind], by_task[task], seed=seed))
                   for kind in judges if task in getattr(built[kind], "tasks", (task,))] for task in tasks}
    return rows, by_task


def format_row(row: SanityRow, width: int) -> str:
    score = row.score
    if score.value is None:
        return f"{row.judge:<{width}}  n/a"
    return f"{row.judge:<{width}}  {score.value:.3f} [{score.ci[0]:.3f}, {score.ci[1]:.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.sanity", description=__doc__.splitlines()[0],
                                     epilog="See docs/eval.md, 'The dataset score'.")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE,
                        help="suite YAML or grid YAML (default: eval/benchmarks.yaml)")
    parser.add_argument("--judge", action="append", metavar="KIND",
                        help=f"sanity judge kind, or a callable judge python:MODULE:FUNCTION that reads no image "
                             f"(printed, not checked) (repeatable; default: {' '.join(STANDARD)})")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="allowed distance from 0.5 / the accuracy")
    parser.add_argument("--per-benchmark", action="store_true", help="also print each judge's balanced accuracy per benchmark")
    args = parser.parse_args(argv)
    judges = args.judge or list(STANDARD)
    try:
        for kind in judges:
            make_judge({"kind": kind})
        rows, by_task = run(load_suite(args.suite), judges)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = []
    width = max(len(kind) for kind in judges)
    for task, task_rows in rows.items():
        counted = [b for b in by_task[task] if b.single_class is None]
        skipped = [b for b in by_task[task] if b.single_class is not None]
        print(f"{args.suite} ({task}): {len(counted)} benchmarks with both classes, "
              f"{sum(len(b.examples) for b in counted)} items")
        for benchmark in skipped:
            print(f"  not counted (one class, {benchmark.single_class}): {benchmark.label}")
        if counted:
            print(f"  chance resolution: a coin's score varies with sd {coin_sd(counted):.3f} on this suite")
        for row in task_rows:
            print(format_row(row, width))
            if args.per_benchmark:
                for label, value in row.score.per_benchmark.items():
                    print(f"    {value:.3f}  {label}")
        failures += property_failures(task_rows, args.tolerance)
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
