"""`bench/generation_pipeline.py` runs end to end on tiny sizes (so it cannot rot); no timing is asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_pipeline_bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "generation_pipeline.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture
def shared_photos():
    manifest = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared")) / "images" / "MANIFEST.csv"
    if not manifest.exists():
        pytest.skip(f"the shared photos are not at {manifest.parent} (set RMS_SHARED)")


def test_the_pipeline_benchmark_prints_its_table_and_a_free_rerun(shared_photos):
    completed = run_pipeline_bench("--images", "3", "--latency", "0.001")
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in completed.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| run") and not line.startswith("|---")}
    assert len(rows) == 5
    fresh, rerun = rows["fresh run, instant model"], rows["rerun of the finished run dir"]
    assert fresh[1] == "3" and int(fresh[3]) > 0  # 3 photos in, live model calls made
    assert rerun[3] == "0"  # the rerun of a finished run makes no model call


def test_the_pipeline_benchmark_times_a_baseline_checkout_side_by_side(shared_photos):
    completed = run_pipeline_bench("--images", "2", "--latency", "0.001", "--baseline", str(REPO), "--rounds", "1")
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line.split(" | ") for line in completed.stdout.splitlines() if line.startswith(("| baseline", "| this checkout"))]
    assert [row[0] for row in rows] == [f"| baseline ({REPO})", f"| this checkout ({REPO})"]
    assert rows[0][1] == rows[1][1] and int(rows[0][1]) > 0  # the same code makes the same live calls
    assert "x the baseline's time" in completed.stdout

    refused = run_pipeline_bench("--baseline", "/nonexistent", timeout=60)
    assert refused.returncode == 2 and "not a checkout of this repository" in refused.stderr


def test_the_scale_benchmark_prints_a_row_per_size_and_checkout_with_a_free_rerun(shared_photos, tmp_path):
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "generation_scale.py"), "12", "20", "--work",
                                str(tmp_path), "--baseline", str(REPO)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line.split(" | ") for line in completed.stdout.splitlines() if line.startswith(("| this checkout", "| baseline"))]
    assert [(row[0], row[1]) for row in rows] == [("| this checkout", "12"), ("| baseline", "12"),
                                                   ("| this checkout", "20"), ("| baseline", "20")]
    assert all(int(row[3].replace(",", "")) > 0 and row[-1].strip(" |") == "0" for row in rows)  # calls; none on rerun
    assert rows[0][2:4] == rows[1][2:4]  # the same code on the same photos: the same pairs and calls
    assert len(list((tmp_path / "photos").glob("*.jpg"))) == 20 and not any((tmp_path / "runs").iterdir())


def test_the_dedup_benchmark_finds_what_the_scans_find(tmp_path):
    completed = subprocess.run([sys.executable, str(REPO / "bench" / "indexed_dedup.py"), "--items", "300"],
                               capture_output=True, text=True, timeout=600, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [line.split(" | ") for line in completed.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3 and all(row[3] == "1.0000" and row[4] == "1.0000" for row in rows)
