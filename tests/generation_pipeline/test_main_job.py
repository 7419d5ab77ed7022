"""The README's main job end to end, exactly as configured: the real SmolLM2-135M-Instruct through the
transformers backend on the bundled sample photos, producing a release that validates and loads."""

from __future__ import annotations

import json

import pytest

from generation.run import run
from generation.steps.config import REPO_ROOT, RunConfig

pytestmark = pytest.mark.slow


def test_sample_smollm2_config_runs_the_whole_pipeline(tmp_path):
    import datasets

    config = RunConfig.from_yaml(REPO_ROOT / "generation" / "configs" / "sample_smollm2.yaml")
    report = run(config, tmp_path / "run", show_progress=False)

    assert report["funnel"]["ingest"] == [config.max_images] * 2
    assert report["usage"]["model_calls"] > 0 and report["usage"]["completion_tokens"] > 0  # the real model ran
    rejects_file = tmp_path / "run" / ("release/rejects.jsonl" if report["release"] else "release-rejects.jsonl")
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert report["images_in"] == config.max_images == report["images_released"] + sum(r["kind"] == "image" for r in rejects)
    assert all(r["reason"] for r in rejects)
    # Greedy decoding and log-odds verdicts make the run deterministic: on these photos SmolLM2 keeps a pair.
    assert report["release"] is not None, "the demo must produce a release (see docs/generation.md)"
    assert report["problems"] == []
    pairs = datasets.load_dataset(report["release"], "pairs")
    assert sum(len(split) for split in pairs.values()) == report["pairs"] > 0
    row = next(iter(pairs.values()))[0]
    assert row["generator"] == "smollm2" and row["verification"]["pair"] == "unsafe"
