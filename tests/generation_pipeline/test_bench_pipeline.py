"""`bench/generation_pipeline.py --baseline` runs end to end on a tiny size (so it cannot rot); no timing is
asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_pipeline_benchmark_times_a_baseline_checkout_side_by_side():
    shared = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared")) / "images" / "MANIFEST.csv"
    if not shared.exists():
        pytest.skip(f"the shared photos are not at {shared.parent} (set RMS_SHARED)")
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "generation_pipeline.py"), "--images", "2", "--latency", "0.001",
         "--baseline", str(REPO), "--rounds", "1"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line.split(" | ") for line in completed.stdout.splitlines() if line.startswith(("| baseline", "| this checkout"))]
    assert [row[0] for row in rows] == [f"| baseline ({REPO})", f"| this checkout ({REPO})"]
    assert rows[0][1] == rows[1][1] and int(rows[0][1]) > 0  # the same code makes the same live calls
    assert "x the baseline's time" in completed.stdout

    refused = subprocess.run([sys.executable, str(REPO / "bench" / "generation_pipeline.py"), "--baseline", "/nonexistent"],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert refused.returncode == 2 and "not a checkout of this repository" in refused.stderr
