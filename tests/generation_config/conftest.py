"""Fixtures for the run-config tests: a valid config on disk (scripted roles, a folder with a manifest)
that each test breaks in one place, and the CLI run in-process with its exit code and output."""

from __future__ import annotations

import copy
import csv
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from generation.__main__ import main

FAKE = "tests.generation_pipeline.fake_model:respond"


def valid_config(folder: Path) -> dict:
    return {
        "name": "config-test",
        "input": {"kind": "folder", "path": str(folder)},
        "generator": {"backend": "scripted", "model": "fake-generator", "respond": FAKE, "supports_images": False},
        "verifier": {"backend": "scripted", "model": "fake-verifier", "respond": FAKE, "supports_images": False},
        "exemplars": None,
        "concurrency": 4,
        "risk_chunk": 2,
        "max_tokens": {"query": 60},
    }


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def photo_dir(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(folder / "MANIFEST.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["file", "source", "license", "description"], ["a.jpg", "test/a", "CC0", "a stove"]])
    return folder


@pytest.fixture
def run_cli(tmp_path, photo_dir, capsys, monkeypatch):
    """`run_cli(change)` writes the valid config changed by `change(data)` (or `data` itself when
    `change` is a dict) and runs `python -m generation run` on it. No model may be built."""

    def no_backend(options):
        raise AssertionError(f"a backend was built for a config that should have been refused: {options}")

    for backend in ("openai_backend.OpenAIBackend", "scripted_backend.ScriptedBackend", "transformers_backend.TransformersBackend"):
        monkeypatch.setattr(f"modelcalls.{backend}.from_spec", no_backend)

    def run(change=None, *extra: str, out: Path | None = None) -> CliResult:
        data = copy.deepcopy(valid_config(photo_dir))
        if callable(change):
            change(data)
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        code = main(["run", str(path), "--out", str(out or tmp_path / "out"), "--no-progress", *extra])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
