"""Pipeline overhead, resume and concurrency of `generation run`, with a scripted model (no model time), on
real photos from the shared data. Prints a markdown table.

  python bench/generation_pipeline.py [--images 120] [--latency 0.05] [--profile]

Rows: a fresh run (model calls answered instantly: pure pipeline overhead: ingest, checkpoints, cache,
release writing); a rerun of the finished run directory (everything resumed from checkpoints); a fresh
directory sharing the call cache (every answer from SQLite); and runs with a simulated per-call latency at
concurrency 1 and 8 (what concurrency buys against a remote server). ``--profile`` profiles the fresh
instant run (CPU time) and prints where it goes: this repository's functions and the libraries they call.
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
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generation.run import run  # noqa: E402
from generation.steps.config import RunConfig  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="simulated seconds per model call")
    parser.add_argument("--profile", action="store_true", help="profile the fresh instant run and print the top functions")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
