"""Fixtures shared by every test area: paths to the repo, the shared material and the sample release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RMS_SHARED", REPO_ROOT.parent / "shared")).resolve()

# The Hub is unreachable here and in CI: never let a test wait on it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Benchmarks a developer fetched (`python -m eval.benchmarks fetch`) must not change what tests read: sources
# look for fetched copies in a folder that never exists (tests/eval_sources/test_fetch.py sets its own).
os.environ["RMS_BENCHMARKS_DIR"] = str(REPO_ROOT / "tests" / "no-fetched-benchmarks")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared material not found at {SHARED}; set RMS_SHARED to the shared/ folder")
    return SHARED


@pytest.fixture(scope="session")
def sample_release() -> Path:
    """The committed sample release (read-only: copy it before changing anything)."""
    return REPO_ROOT / "sample_release"


class HeadlessChromium:
    """Renders local HTML files the way a reviewer's browser does (scripts run) and returns the DOM."""

    def __init__(self, executable: str):
        self.executable = executable

    def _run(self, *args: str, timeout: float = 60) -> str:
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as profile:
            result = subprocess.run(
                [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", *args],
                capture_output=True, text=True, timeout=timeout,
            )
        if result.returncode != 0:
            raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def dump_dom(self, html_path: Path, budget_ms: int = 2000) -> str:
        return self._run(f"--virtual-time-budget={budget_ms}", "--dump-dom", Path(html_path).resolve().as_uri())

    def screenshot(self, html_path: Path, png_path: Path, size: str = "1280,900") -> Path:
        self._run(f"--screenshot={png_path}", f"--window-size={size}", "--virtual-time-budget=2000",
                  Path(html_path).resolve().as_uri())
        return png_path


@pytest.fixture(scope="session")
def chromium() -> HeadlessChromium:
    import shutil

    executable = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if executable is None:
        if os.environ.get("RMS_REQUIRE_CHROMIUM"):
            pytest.fail("headless chromium is required (RMS_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("headless chromium is not installed (apt-get install chromium)")
    return HeadlessChromium(executable)
