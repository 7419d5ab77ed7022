"""One eval.score command for several benchmarks (one model load) against the old loop of one eval.score call
per benchmark; then one process against `accelerate launch --num_processes 2`. One run, fresh caches.

    python bench/eval_one_command.py [--base-model tiny-llava] [--limit 8] [--parallel-limit 64]

Table 1 items: MSSBench and VLSU text-only and FigStep (rendered images), ``--limit`` each (the shared
copies). Table 2 items: VLSBench text-only, ``--parallel-limit`` items (ranks take chunks of 32 items, so
64 gives each of 2 ranks one chunk). Every run starts from an empty prediction cache. Each table: wall time,
CPU (user + sys of the child processes), model loads (processes that build the judge: one per eval.score
call, one per rank) and whether the cells agree with the table's first run (verdicts per item; the largest
p_unsafe difference).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = [
    {"name": "mssbench", "task": "query", "text_only": True},
    {"name": "vlsu", "task": "query", "text_only": True, "options": {"borderline": "safe", "not_sure": "exclude"}},
    {"name": "figstep", "task": "query", "options": {"subset": "tiny", "images": "rendered", "benign": "filled"}},
]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the children) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def one_call_per_benchmark(entry: dict, limit: int) -> list[str]:
    """The old way: ``--benchmark NAME`` with its options on the command line."""
    args = ["--benchmark", entry["name"], "--task", entry["task"], "--limit", str(limit)]
    for key, value in (entry.get("options") or {}).items():
        args += ["--option", f"{key}={value}"]
    return args + (["--text-only"] if entry.get("text_only") else [])


def samples(folder: Path) -> dict[str, dict]:
    """Every item's sample line in a run folder, by (benchmark key, item id)."""
    found = {}
    for path in folder.rglob("*.samples.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[(record["benchmark"], record["item_id"])] = record
    return found


def agreement(reference: dict, other: dict) -> str:
    if set(reference) != set(other):
        return f"different items ({len(other)} vs {len(reference)})"
    same = sum(reference[key]["verdict"] == other[key]["verdict"] for key in reference)
    gaps = [abs(reference[key]["p_unsafe"] - other[key]["p_unsafe"]) for key in reference
            if reference[key]["p_unsafe"] is not None and other[key]["p_unsafe"] is not None]
    return f"{same}/{len(reference)} verdicts" + (f", max Δp_unsafe {max(gaps):.1e}" if gaps else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-model", default="tiny-llava")
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--out", default="/tmp/bench_one_command")
    parser.add_argument("--parallel-limit", type=int, default=64, help="table 2: VLSBench items")
    parser.add_argument("--no-accelerate", action="store_true", help="skip table 2 (1 versus 2 processes)")
    args = parser.parse_args()

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    suite = out / "suite.yaml"
    suite.write_text(json.dumps({"benchmarks": [{**entry, "limit": args.limit} for entry in BENCHMARKS]}))
    judge = ["--base-model", args.base_model, "--mode", "fast", "--n-bootstrap", "0"]
    score = [sys.executable, "-m", "eval.score"]
    rows = []

    wall, cpu = timed([*score, "--suite", str(suite), *judge, "--out", str(out / "one")])
    rows.append(("one command (`--suite`, 3 benchmarks)", 1, cpu, wall, samples(out / "one")))

    wall = cpu = 0.0
    for number, entry in enumerate(BENCHMARKS):
        cell = out / "loop" / f"cell{number}.json"
        w, c = timed([*score, *one_call_per_benchmark(entry, args.limit), *judge, "--out", str(cell)])
        wall, cpu = wall + w, cpu + c
    rows.append(("one call per benchmark (3 calls)", len(BENCHMARKS), cpu, wall, samples(out / "loop")))
    print_table(f"Table 1: {len(rows[0][4])} items, judge {args.base_model} (fast), {os.cpu_count()} CPU cores",
                rows)

    accelerate = Path(sys.executable).with_name("accelerate")
    if args.no_accelerate or not accelerate.exists():
        return 0
    items = ["--benchmark", "vlsbench", "--text-only", "--limit", str(args.parallel_limit)]
    launch = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]
    rows = []
    for name, loads, launcher, folder in (("one process", 1, [sys.executable], "p1"),
                                          ("`accelerate launch --num_processes 2`", 2, launch, "p2")):
        wall, cpu = timed([*launcher, "-m", "eval.score", *items, *judge, "--out", str(out / folder / "cell.json")])
        rows.append((name, loads, cpu, wall, samples(out / folder)))
    print_table(f"Table 2: {len(rows[0][4])} items, judge {args.base_model} (fast)", rows)
    return 0


def print_table(title: str, rows: list[tuple]) -> None:
    reference = rows[0][4]
    print(f"{title}\n")
    print("| run | model loads | CPU (user + sys) | wall | cells vs first run |")
    print("|---|---|---|---|---|")
    for name, loads, cpu, wall, found in rows:
        print(f"| {name} | {loads} | {cpu:.1f} s | {wall:.1f} s | {agreement(reference, found)} |")
    print()


if __name__ == "__main__":
    sys.exit(main())
