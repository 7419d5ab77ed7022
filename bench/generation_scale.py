"""How `generation run` scales: CPU time, peak memory and a no-op rerun at growing sizes, with the instant
scripted model (tests/generation_pipeline/fake_model.py, no model time) and every gate disabled, so every
pair flows through and what is measured is the pipeline itself. Prints a markdown table.

  python bench/generation_scale.py [SIZE ...] [--work DIR] [--baseline DIR] [--profile]

SIZE: photos per run (default 1000 8000 40000; "8k" works too). The photos are derived from the shared ones
(../shared/images, or $RMS_SHARED/images): a random crop (60-100 % of each side), a flip, a colour change
(brightness, contrast, saturation), 640 px on the long side, each with a distinct description (random
words, one risk word the scripted model reacts to). They are made once under --work and reused by later
sizes and later invocations (derivation is not measured).

Each run is a child process: CPU seconds (user + system) and peak RSS come from `os.wait4` (the child's own
rusage), wall seconds are printed but the machine may be shared: compare CPU. Then the same command is run
again on the finished run directory (a rerun that changes nothing) and its CPU is reported.
``--baseline DIR`` runs another checkout of this repository (``git worktree add /tmp/old <commit>``) on the
same photos in the same invocation, side by side. ``--profile SIZE`` profiles this checkout's fresh run at
that size (CPU time) and prints the top functions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared")) / "images"
RISK_WORDS = ("cliff", "stove", "pool")
SIDE = 640


def parse_size(text: str) -> int:
    try:
        return int(float(text[:-1]) * 1000) if text.lower().endswith("k") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is a number of photos (1000, 8k), got {text!r}") from None


def _vocabulary(rows: list[dict]) -> list[str]:
    words = {w for row in rows for w in "".join(c if c.isalpha() else " " for c in row["description"].lower()).split()
             if len(w) > 2}
    return sorted(words - set(RISK_WORDS))


def derive_photos(folder: Path, count: int) -> None:
    """Photos 0..count-1 under `folder` (those already there are kept), with `folder`/all.csv listing them."""
    from PIL import Image, ImageEnhance, ImageOps

    with open(SHARED / "MANIFEST.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    vocabulary = _vocabulary(rows)
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder / "all.csv"
    done = sum(1 for _ in open(listing)) - 1 if listing.exists() else 0
    if done >= count:
        return
    sources = [Image.open(SHARED / row["file"]).convert("RGB") for row in rows]
    with open(listing, "a", newline="") as handle:
        writer = csv.writer(handle)
        if done == 0:
            writer.writerow(["file", "source", "license", "description"])
        for index in range(done, count):
            rng = random.Random(f"derive:{index}")
            base = rng.randrange(len(rows))
            image = sources[base]
            width, height = image.size
            w, h = int(width * rng.uniform(0.6, 1.0)), int(height * rng.uniform(0.6, 1.0))
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            photo = image.crop((left, top, left + w, top + h))
            if rng.random() < 0.5:
                photo = ImageOps.mirror(photo)
            for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                photo = enhancer(photo).enhance(rng.uniform(0.7, 1.3))
            photo.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
            if max(photo.size) < SIDE:
                scale = SIDE / max(photo.size)
                photo = photo.resize((round(photo.size[0] * scale), round(photo.size[1] * scale)), Image.Resampling.BILINEAR)
            name = f"p{index:06d}.jpg"
            photo.save(folder / name, format="JPEG", quality=85)
            words = " ".join(rng.sample(vocabulary, 8))
            writer.writerow([name, f"{rows[base]['source_repo']}/{rows[base]['source_path']}#derived-{index}",
                             rows[base]["license"], f"{words} {RISK_WORDS[index % 3]}"])


def manifest(folder: Path, count: int) -> Path:
    """A manifest of the first `count` derived photos (lives in `folder`: file names are relative to it)."""
    path = folder / f"first-{count}.csv"
    if not path.exists():
        with open(folder / "all.csv", newline="") as source:
            lines = source.read().splitlines()[: count + 1]
        path.write_text("\n".join(lines) + "\n")
    return path


def config(listing: Path) -> dict:
    role = {"backend": "scripted", "respond": "tests.generation_pipeline.fake_model:respond", "supports_images": False}
    return {"input": {"kind": "manifest", "path": str(listing)}, "exemplars": None, "concurrency": 64,
            "gates": {"enabled": False}, "generator": {**role, "model": "g"}, "verifier": {**role, "model": "v"}}


# One run of the checkout at sys.path[0] (its own pipeline code); prints the report's counts as JSON.
RUN = """
import cProfile, json, pstats, sys, time
from generation.engine.config import RunConfig
from generation.run import run
config = RunConfig.from_dict(json.loads(sys.argv[1]))
profile = cProfile.Profile(time.process_time) if sys.argv[3] else None
if profile: profile.enable()
report = run(config, sys.argv[2], show_progress=False)
if profile:
    profile.disable()
    stats = pstats.Stats(profile, stream=sys.stderr)
    stats.sort_stats("cumulative").print_stats(r"generation/|modelcalls/|datasets/|pyarrow|PIL/", 30)
print(json.dumps({"pairs": report["pairs"], "calls": report["usage"]["model_calls"], "problems": report["problems"]}))
"""


def run_child(tree: Path, cfg: dict, out: Path, profile: bool = False) -> dict:
    """Run the checkout at `tree` on `cfg` into `out` in a child process: its counts, CPU s, peak RSS, wall s."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a long profile cannot block the child
        child = subprocess.Popen([sys.executable, "-c", RUN, json.dumps(cfg), str(out), "1" if profile else ""],
                                 cwd=tree, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        stdout = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        errors.seek(0)
        stderr = errors.read()
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        sys.exit(f"the run of {tree} failed:\n{stderr[-3000:]}")
    if profile:
        print(stderr[-10000:], file=sys.stderr)
    counts = json.loads(stdout.strip().splitlines()[-1])
    return {**counts, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=parse_size, default=[1000, 8000, 40000], metavar="SIZE")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rms-generation-scale"),
                        help="where the derived photos are kept (reused) and the runs are written (removed)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR", help="another checkout, run side by side")
    parser.add_argument("--profile", type=parse_size, default=None, metavar="SIZE",
                        help="profile this checkout's fresh run at SIZE (printed to stderr)")
    parser.add_argument("--keep", action="store_true",
                        help="keep this checkout's run directories under --work/runs (to open their galleries, say)")
    args = parser.parse_args()
    if args.baseline is not None and not (args.baseline / "generation" / "run.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of this repository (no generation/run.py)")
    if not (SHARED / "MANIFEST.csv").is_file():
        parser.error(f"the shared photos are not at {SHARED} (set RMS_SHARED)")
    photos = args.work / "photos"
    derive_photos(photos, max(args.sizes))
    trees = [("this checkout", REPO)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    print("| checkout | photos | pairs | calls | CPU s | CPU ms/photo | peak RSS MiB | wall s | no-op rerun CPU s | rerun calls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for size in args.sizes:
        cfg = config(manifest(photos, size))
        for label, tree in trees:
            out = args.work / "runs" / f"{label.replace(' ', '-')}-{size}"
            shutil.rmtree(out, ignore_errors=True)
            fresh = run_child(tree, cfg, out, profile=label == "this checkout" and args.profile == size)
            rerun = run_child(tree, cfg, out)
            problems = f" ({len(fresh['problems'])} problems)" if fresh["problems"] else ""
            print(f"| {label} | {size:,} | {fresh['pairs']:,}{problems} | {fresh['calls']:,} | {fresh['cpu']:.1f} | "
                  f"{1000 * fresh['cpu'] / size:.1f} | {fresh['rss_mib']:.0f} | {fresh['wall']:.0f} | {rerun['cpu']:.1f} | "
                  f"{rerun['calls']} |", flush=True)
            if not (args.keep and label == "this checkout"):
                shutil.rmtree(out, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end (CPU seconds are the children's own, whatever the load)")


if __name__ == "__main__":
    main()
