"""bench/generation_calls.py runs end to end (tiny sizes) and its resume row shows zero model calls."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_script_prints_the_table():
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "generation_calls.py"), "--n", "20", "--resume-n", "10", "--rounds", "1",
         "--overhead-delay-ms", "5", "--resume-delay-ms", "20"],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| (")]
    assert len(rows) == 9
    resume = next(row for row in rows if row.startswith("| (c) same run repeated"))
    assert "0 model calls" in resume
    warm = next(row for row in rows if "cache warm" in row)
    assert "| 0 model calls |" in warm
