"""The call-layer benchmarks run end to end on tiny sizes (so they cannot rot); no timing is asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_call_benchmark_prints_every_section_and_skips_a_missing_peer():
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "generation_calls.py"), "--n", "40", "--concurrency", "8", "--rounds", "1",
         "--delay-ms", "5", "--resume-n", "20", "--resume-delay-ms", "5",
         "--clients", "ours", "ours@asyncio", "aiohttp", "aiohttp@uvloop", "curator", "--python", "curator=/nonexistent/python"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| (")]
    sections = [row.split(" | ")[0] for row in rows]
    assert sections == ["| (1) limit"] * 5 + ["| (2) faults"] * 2 + ["| (3) resume"] * 2 + ["| (4) replicas"]
    assert "skipped curator: /nonexistent/python not found" in completed.stdout
    ours, ours_asyncio, aiohttp, aiohttp_uvloop = (row.split(" | ") for row in rows[1:5])
    assert ours[1].endswith("on uvloop") and "RMS_EVENT_LOOP=asyncio" in ours_asyncio[1]
    assert ours[6] and ours_asyncio[6] and not aiohttp[6] and not aiohttp_uvloop[6]  # x of aiohttp on the same loop
    faults = rows[6]
    assert "40/40 correct" in faults and "answered 429" in faults
    resume = rows[8]
    assert "| 0 model calls (server count), 20/20 from the cache" in resume
    replicas = rows[9]
    assert "40/40 items answered once and correctly" in replicas and "taken out 1x" in replicas


@pytest.mark.slow
def test_the_pipeline_benchmark_prints_its_table_and_a_free_rerun():
    shared = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared")) / "images" / "MANIFEST.csv"
    if not shared.exists():
        pytest.skip(f"the shared photos are not at {shared.parent} (set RMS_SHARED)")
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "generation_pipeline.py"), "--images", "3", "--latency", "0.001"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in completed.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| run") and not line.startswith("|---")}
    assert len(rows) == 5
    fresh, rerun = rows["fresh run, instant model"], rows["rerun of the finished run dir"]
    assert fresh[1] == "3" and int(fresh[3]) > 0  # 3 photos in, live model calls made
    assert rerun[3] == "0"  # the rerun of a finished run makes no model call
