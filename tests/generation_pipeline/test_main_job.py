"""The README's main job end to end, exactly as configured: the real SmolLM2-135M-Instruct through the
transformers backend on the bundled sample photos. Either a release whose every pair passed the gates and
carries the measured log-odds, or (SmolLM2 often writes nothing that passes) no release, said plainly, with
the gallery of candidates and rejects."""

from __future__ import annotations

import json

import pytest

from generation.engine.config import REPO_ROOT, RunConfig
from generation.run import run
from generation.steps import gates
from modelcalls.hf_loading import shared_model

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
    assert (tmp_path / "run" / "gallery.html").exists()  # candidates and rejects, with or without a release
    summary = json.loads((tmp_path / "run" / "shard" / "summary.json").read_text())
    loaded = shared_model("smollm2").fingerprint  # what the backend actually loaded, in the provenance
    assert summary["models"]["generator"] == {"backend": "transformers", "model": "smollm2", "loaded": loaded}
    assert loaded["weights"] and loaded["revision"] is None  # a local model: identified by its weight files
    if report["release"] is None:  # SmolLM2 may keep no pair once every text must pass the gates: said plainly
        assert report["pairs"] == 0 and rejects
        return
    assert report["problems"] == []
    pairs = datasets.load_dataset(report["release"], "pairs")
    assert sum(len(split) for split in pairs.values()) == report["pairs"] > 0
    for row in (row for split in pairs.values() for row in split):  # a kept pair passed every gate
        assert row["generator"] == "smollm2" and row["verification"]["mode"] == "log_odds_margin"
        scores, margin = row["verification"]["scores"], row["verification"]["margin"]
        assert margin == config.verdict_margin and all(scores[c] <= scores["pair"] - margin
                                                       for c in ("text_alone", "image_alone", "safe_twin"))
        assert gates.check(row["text"], "query", gates.Context(fields={"scene": row["scene"]}), config.gates)
        assert gates.check(row["safe_twin_text"], "safe_twin", gates.Context(fields={"query": row["text"]}), config.gates)
