from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from generation.sample import build_sample

PHOTOS = ["coco128_000000000030.jpg", "coco128_000000000071.jpg", "coco128_000000000072.jpg", "coco128_000000000073.jpg"]


def write_curated_sample(root: Path, shared_dir: Path, n_pairs: int = 8) -> Path:
    """A small curated-sample folder (real shared photos, placeholder texts) in the sample/ layout."""
    images = root / "images"
    images.mkdir(parents=True)
    with open(images / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "license", "attribution_url", "description"])
        for name in PHOTOS:
            shutil.copy(shared_dir / "images" / name, images / name)
            writer.writerow([name, f"developer0hye/COCO128/{name}", "CC BY 2.0", f"https://example.org/{name}", "a photo"])
    with open(root / "curated_pairs.jsonl", "w") as handle:
        for index in range(n_pairs):
            pair = {
                key: f"{key} number {index}"
                for key in ("scene", "text", "risk_subcategory", "risk_rationale", "safe_twin_text", "safe_response", "unsafe_response")
            }
            pair.update(image_file=PHOTOS[index % len(PHOTOS)], risk_category=["falls", "fire_and_burns"][index % 2])
            handle.write(json.dumps(pair) + "\n")
    return root


@pytest.fixture(scope="session")
def small_release(tmp_path_factory, shared_dir) -> Path:
    """A release built from a small curated folder; read-only for tests (copy before corrupting)."""
    root = tmp_path_factory.mktemp("small")
    sample = write_curated_sample(root / "sample", shared_dir)
    return build_sample(root / "release", sample)


@pytest.fixture
def release_copy(small_release, tmp_path) -> Path:
    target = tmp_path / "release"
    shutil.copytree(small_release, target)
    return target
