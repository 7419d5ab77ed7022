"""Fixtures for the generation pipeline tests: photo folders built from real photos of the shared data,
scripted backends (see fake_model.py) and a config factory."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from generation.engine.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RMS_SHARED", REPO / ".." / "shared"))
SHARED_IMAGES = SHARED / "images"


def shared_photos(count: int) -> list[Path]:
    photos = sorted(p for p in SHARED_IMAGES.glob("*.jpg"))[:count]
    if len(photos) < count:
        pytest.skip(f"needs {count} photos in {SHARED_IMAGES}")
    return photos


def write_folder(folder: Path, entries: list[tuple[str, bytes, str]], license_="CC BY 2.0") -> Path:
    """A photo folder with MANIFEST.csv: entries are (file name, bytes, description)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "license", "attribution_url", "description"])
        for name, data, description in entries:
            (folder / name).write_bytes(data)
            writer.writerow([name, f"test/{name}", license_, f"https://example.org/{name}", description])
    return folder


@pytest.fixture
def photo_folder(tmp_path):
    """Build a folder of distinct real photos whose descriptions steer the fake model."""

    def build(descriptions: list[str], name: str = "photos") -> Path:
        photos = shared_photos(len(descriptions))
        return write_folder(tmp_path / name, [(p.name, p.read_bytes(), d) for p, d in zip(photos, descriptions)])

    return build


def config_for(folder: Path, **overrides) -> RunConfig:
    """The test run config: the fake model (fake_model.py) as generator and verifier, text-only."""
    data = {
        "name": "test",
        "input": {"kind": "folder", "path": str(folder)},
        "generator": {"backend": "scripted", "model": "fake-generator", "respond": "tests.generation_pipeline.fake_model:respond",
                      "supports_images": False},
        "verifier": {"backend": "scripted", "model": "fake-verifier", "respond": "tests.generation_pipeline.fake_model:respond",
                     "supports_images": False},
        "exemplars": None,
        "max_rewrites": 2,
        "concurrency": 4,
        "risk_chunk": 2,
    }
    data.update(overrides)
    return RunConfig.from_dict(data)


@pytest.fixture
def make_config():
    return config_for


def jpeg_bytes(size=(64, 48), color=(200, 30, 30), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=save.pop("format", "JPEG"), **save)
    return buffer.getvalue()
