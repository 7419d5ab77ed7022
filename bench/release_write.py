"""Release writing and validation at scale: CPU seconds and peak memory, photos given by path vs in memory.

Builds N pairs over the shared photos (each photo reused with other texts), writes them as a release with
`generation.release.write.write_release` in a child process per mode, then validates it, and prints one table row
per mode: rows written, output MB, shards, CPU seconds to write and to validate, and the child's peak RSS.
"path" rows carry `{"path": ..., "bytes": None}` (what finalize passes: the writer reads each photo when its
row group is written); "bytes" rows carry every photo's bytes, as a caller holding them all would.

    python bench/release_write.py [N_PAIRS] [SHARD_MB]
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
import rms_dataset as rms
from bench.release_write import source_rows
from generation.release.validate import validate_release
from generation.release.write import write_release

n_pairs, shard_mb, mode, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = source_rows(n_pairs, in_memory=mode == "bytes")
start = time.process_time()
write_release(out, rows, shard_bytes=shard_mb * 10**6)
written = time.process_time()
problems = validate_release(out)
validated = time.process_time()
shards = sum(len(paths) for config in rms.CONFIG_NAMES for paths in rms.find_shards(out, config).values())
size = sum(p.stat().st_size for p in __import__("pathlib").Path(out).rglob("*") if p.is_file())
print(json.dumps({"mode": mode, "write_cpu_s": written - start, "validate_cpu_s": validated - written,
                  "problems": len(problems), "shards": shards, "output_MB": size / 10**6,
                  "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def shared_photos() -> list[Path]:
    images = Path(os.environ.get("RMS_SHARED") or ROOT / ".." / "shared").resolve() / "images"
    with open(images / "MANIFEST.csv", newline="") as handle:
        return [images / row["file"] for row in csv.DictReader(handle)]


def source_rows(n_pairs: int, *, in_memory: bool) -> dict:
    """rows[config]["train"] for `n_pairs` pairs over the shared photos, each with both responses."""
    import rms_dataset as rms

    photos = shared_photos()
    rows = {config: {"train": []} for config in rms.SOURCE_CONFIGS}
    ids = {}
    for number in range(n_pairs):
        photo = photos[number % len(photos)]
        if photo not in ids:
            ids[photo] = rms.image_id_for(photo.read_bytes())
        image_id = ids[photo]
        image = {"bytes": photo.read_bytes(), "path": photo.name} if in_memory else {"path": str(photo), "bytes": None}
        text = f"Is it fine to climb up here for a better view, number {number}?"
        pair_id = rms.pair_id_for(image_id, text)
        rows[rms.PAIRS]["train"].append({
            "id": pair_id, "image": image, "image_id": image_id, "image_source": f"shared/{photo.name}",
            "image_license": "CC BY 2.0", "image_attribution": "https://example.org", "scene": "a scene",
            "text": text, "risk_category": "falls", "risk_subcategory": "fall_from_height",
            "risk_rationale": "a fall", "safe_twin_text": f"Where is a safe spot to look from, number {number}?",
            "verification": {"text_alone": "safe", "image_alone": "safe", "pair": "unsafe", "safe_twin": "safe",
                             "verifier": "bench", "mode": rms.VERIFICATION_CURATED,
                             "scores": dict.fromkeys(rms.CHECKS), "margin": None},
            "generator": "bench", "pipeline_version": rms.PIPELINE_VERSION,
        })
        for config, label in rms.RESPONSE_CONFIGS.items():
            response = f"A {label} answer to question {number}."
            rows[config]["train"].append({
                "id": rms.response_id_for(pair_id, label, response), "pair_id": pair_id, "image": image,
                "image_id": image_id, "text": text, "risk_category": "falls", "response": response, "label": label,
                "generator": "bench",
            })
    return rows


def main() -> int:
    n_pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    shard_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("path", "bytes"):
            out = Path(tmp) / mode
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(n_pairs), str(shard_mb), mode, str(out)],
                                  capture_output=True, text=True, env={**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"})
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            results.append({**json.loads(done.stdout.strip().splitlines()[-1]), "wall_s": time.perf_counter() - start})
    print(f"{n_pairs} pairs x 4 configs, shard target {shard_mb} MB, python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| photos given as | output MB | shards | write CPU s | validate CPU s | peak RSS MB | problems |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in results:
        print(f"| {row['mode']} | {row['output_MB']:.0f} | {row['shards']} | {row['write_cpu_s']:.1f} | "
              f"{row['validate_cpu_s']:.1f} | {row['peak_rss_MB']:.0f} | {row['problems']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
