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
