import csv
import json

import pytest
from PIL import Image

from judging.sources.benchmark_files import shared_benchmark_path


@pytest.fixture(scope="session")
def benchmarks_dir():
    path = shared_benchmark_path()
    assert path.is_dir(), f"shared benchmark files not found at {path}; set RMS_SHARED"
    return path


@pytest.fixture(scope="session")
def raw(benchmarks_dir):
    """The shared annotation files read directly, independently of the adapters."""

    def read_json(*parts):
        return json.loads(benchmarks_dir.joinpath(*parts).read_text(encoding="utf-8"))

    def read_csv(*parts):
        with open(benchmarks_dir.joinpath(*parts), encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    return {"json": read_json, "csv": read_csv}


def write_image(path, color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path
