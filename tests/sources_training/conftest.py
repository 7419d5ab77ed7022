"""Fixtures for the training sources: a release built from the repo's curated sample, image folders."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def curated_release(tmp_path_factory) -> Path:
    """A release written by the real release writer from the committed curated pairs (sample/)."""
    from generation.sample import build_sample

    return build_sample(tmp_path_factory.mktemp("release") / "rms", overwrite=True)


@pytest.fixture(scope="session")
def a_photo(shared_dir) -> Path:
    return sorted((shared_dir / "images").glob("*.jpg"))[0]
