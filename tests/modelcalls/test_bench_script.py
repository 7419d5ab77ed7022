"""The call-layer benchmark runs end to end on tiny sizes (so it cannot rot); no timing is asserted."""

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
         "--clients", "ours", "ours@asyncio", "aiohttp", "aiohttp@uvloop", "pyreqwest@uvloop", "curator", "--python", "curator=/nonexistent/python"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| (")]
    sections = [row.split(" | ")[0] for row in rows]
    assert sections == ["| (1) limit"] * 6 + ["| (2) faults"] * 2 + ["| (3) resume"] * 2 + ["| (4) replicas"]
    assert "skipped curator: /nonexistent/python not found" in completed.stdout
    ours, ours_asyncio, aiohttp, aiohttp_uvloop, pyreqwest = (row.split(" | ") for row in rows[1:6])
    assert ours[1].endswith("on uvloop") and "RMS_EVENT_LOOP=asyncio" in ours_asyncio[1]
    assert "bare pyreqwest loop on uvloop" in pyreqwest[1]
    assert ours[6] and ours_asyncio[6] and pyreqwest[6]  # x of aiohttp on the same loop...
    assert not aiohttp[6] and not aiohttp_uvloop[6]  # ...of which aiohttp is the reference
    faults = rows[7]
    assert "40/40 correct" in faults and "answered 429" in faults
    resume = rows[9]
    assert "| 0 model calls (server count), 20/20 from the cache" in resume
    replicas = rows[10]
    assert "40/40 items answered once and correctly" in replicas and "taken out 1x" in replicas

