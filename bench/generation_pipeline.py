"""Pipeline overhead, resume and concurrency of `generation run`, with a scripted model (no model time), on
real photos from the shared data. Prints a markdown table.

  python bench/generation_pipeline.py [--images 120] [--latency 0.05] [--profile] [--baseline DIR [--rounds 3]]

Rows: a fresh run (model calls answered instantly: pure pipeline overhead: ingest, checkpoints, cache,
release writing); a rerun of the finished run directory (everything resumed from checkpoints); a fresh
directory sharing the call cache (every answer from SQLite); and runs with a simulated per-call latency at
concurrency 1 and 8 (what concurrency buys against a remote server). ``--profile`` profiles the fresh
instant run (CPU time) and prints where it goes: this repository's functions and the libraries they call.
``--baseline DIR`` also times the fresh instant run of another checkout of this repository (an older commit
exported with ``git archive``, say) against this one, alternating fresh processes ``--rounds`` times each
(the same photos, Python and packages), and prints both medians and their ratio.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generation.engine.config import RunConfig  # noqa: E402
from generation.run import run  # noqa: E402

SHARED = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared")) / "images"
RISK_WORDS = ("cliff", "stove", "pool")


def build_folder(target: Path, count: int) -> Path:
    target.mkdir(parents=True)
    with open(SHARED / "MANIFEST.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:count]
    with open(target / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "license", "description"])
        for index, row in enumerate(rows):
            shutil.copy(SHARED / row["file"], target / row["file"])
            # steer the scripted model: one of its risk words, varied queries per photo
            writer.writerow([row["file"], row["source_repo"], row["license"], f"{row['description']} {RISK_WORDS[index % 3]}"])
    return target


def config(folder: Path, latency: float, concurrency: int, cache: Path | None = None) -> RunConfig:
    role = {"backend": "scripted", "respond": "tests.generation_pipeline.fake_model:respond", "supports_images": False,
            "delay_s": latency}
    return RunConfig.from_dict({"input": {"kind": "folder", "path": str(folder)}, "exemplars": None,
                                "concurrency": concurrency, "risk_chunk": 8, "cache": str(cache) if cache else None,
                                "generator": {**role, "model": "g"}, "verifier": {**role, "model": "v"}})


def timed(label: str, cfg: RunConfig, out: Path, rows: list, profile: cProfile.Profile | None = None) -> None:
    start = time.perf_counter()
    if profile is not None:
        profile.enable()
    report = run(cfg, out, show_progress=False)
    if profile is not None:
        profile.disable()
    seconds = time.perf_counter() - start
    usage = report["usage"]
    calls = usage["model_calls"]
    rows.append((label, report["images_in"], report["pairs"], calls, usage["cached_calls"], seconds,
                 calls / seconds if calls else 0.0))


# One fresh instant run of the checkout at `tree` (its own pipeline code and bench helpers), after a warm-up
# run: prints "<seconds> <live model calls>".
FRESH_RUN = """
import sys, tempfile, time
from pathlib import Path
sys.path[:0] = [{tree!r}, {tree!r} + "/bench"]
import generation_pipeline as bench
from generation.run import run
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    folder = bench.build_folder(tmp / "photos", {images})
    run(bench.config(bench.build_folder(tmp / "warm", 3), 0.0, 8), tmp / "w", show_progress=False)
    start = time.perf_counter()
    report = run(bench.config(folder, 0.0, 8), tmp / "a", show_progress=False)
    print(time.perf_counter() - start, report["usage"]["model_calls"])
"""


def fresh_run(tree: Path, images: int) -> tuple[float, int]:
    env = {**os.environ, "RMS_SHARED": str(SHARED.parent.resolve())}
    done = subprocess.run([sys.executable, "-c", FRESH_RUN.format(tree=str(tree), images=images)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"the fresh run of {tree} failed:\n{done.stderr[-3000:]}")
    seconds, calls = done.stdout.split()[-2:]
    return float(seconds), int(calls)


def side_by_side(baseline: Path, images: int, rounds: int) -> None:
    timings: dict[str, list[tuple[float, int]]] = {"baseline": [], "this checkout": []}
    for _ in range(rounds):  # alternating, so a change of machine load hits both alike
        timings["baseline"].append(fresh_run(baseline, images))
        timings["this checkout"].append(fresh_run(REPO, images))
    print(f"\nside by side, fresh run with the instant model, {rounds} alternating rounds each, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print("| checkout | live model calls | seconds (each round) | median seconds | live calls/s (median) |")
    print("|---|---:|---|---:|---:|")
    medians = {}
    for label, runs in timings.items():
        medians[label] = statistics.median(seconds for seconds, _ in runs)
        where = baseline if label == "baseline" else REPO
        print(f"| {label} ({where}) | {runs[0][1]} | {', '.join(f'{s:.2f}' for s, _ in runs)} | {medians[label]:.2f} | "
              f"{runs[0][1] / medians[label]:.0f} |")
    print(f"this checkout takes {medians['this checkout'] / medians['baseline']:.2f}x the baseline's time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="simulated seconds per model call")
    parser.add_argument("--profile", action="store_true", help="profile the fresh instant run and print the top functions")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="another checkout to time the fresh instant run against, side by side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per checkout with --baseline")
    args = parser.parse_args()
    if args.baseline is not None and not (args.baseline / "generation" / "run.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of this repository (no generation/run.py)")
    rows: list = []
    profile = cProfile.Profile(time.process_time) if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = build_folder(tmp / "photos", args.images)
        timed("warm-up (imports, first parquet write)", config(build_folder(tmp / "warm", 3), 0.0, 8), tmp / "w", [])
        timed("fresh run, instant model", config(folder, 0.0, 8), tmp / "a", rows, profile)
        timed("rerun of the finished run dir", config(folder, 0.0, 8), tmp / "a", rows)
        timed("fresh dir, shared call cache", config(folder, 0.0, 8, cache=tmp / "a" / "calls.sqlite"), tmp / "b", rows)
        timed(f"fresh run, {args.latency*1000:.0f} ms/call, concurrency 1", config(folder, args.latency, 1), tmp / "c", rows)
        timed(f"fresh run, {args.latency*1000:.0f} ms/call, concurrency 8", config(folder, args.latency, 8), tmp / "d", rows)
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| run | images | pairs | live model calls | cached answers | seconds | live calls/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, images, pairs, calls, cached, seconds, rate in rows:
        print(f"| {label} | {images} | {pairs} | {calls} | {cached} | {seconds:.1f} | {rate:.0f} |")
    if profile is not None:
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        total = sum(timing[2] for timing in stats.stats.values())  # CPU seconds, all functions (tottime)
        print(f"\nprofile of the fresh instant run: {total:.2f} s CPU; top functions by cumulative CPU time")
        stats.sort_stats("cumulative").print_stats(r"generation/|modelcalls/|jinja2/|sqlite3|PIL/|datasets/", 25)
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[-6000:])
    if args.baseline is not None:
        side_by_side(args.baseline.resolve(), args.images, args.rounds)


if __name__ == "__main__":
    main()
