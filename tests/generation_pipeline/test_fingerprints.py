"""Fingerprinted checkpoints: rerunning into the same --out after a config change re-runs exactly the steps
the change determines (the others resume), the release equals a fresh run with the new config, the
provenance files describe the new config, and switching back reuses the old checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

import generation.prompts as prompts
import generation.steps.base as step_base
from generation.run import run
from tests.generation_pipeline.conftest import config_for, shared_photos, write_folder
from tests.generation_pipeline.test_resume_and_shards import release_content

DESCRIPTIONS = ["a cliff edge at sunset", "a kitchen stove LEAKY", "a quiet pool"]
ALL_STEPS = {"screen", "scene", "risks", "image_alone", "query", "twin", "verify", "respond_safe", "respond_unsafe", "check"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A photo folder and one finished run into it with the base config (copied per test: it is not cheap)."""
    root = tmp_path_factory.mktemp("fingerprints")
    folder = write_folder(root / "photos", [(p.name, p.read_bytes(), d) for p, d in zip(shared_photos(3), DESCRIPTIONS)])
    report = run(config_for(folder), root / "run", show_progress=False)
    return folder, root / "run", report


@pytest.fixture
def folder(finished):
    return finished[0]


@pytest.fixture
def first_run(finished, tmp_path):
    shutil.copytree(finished[1], tmp_path / "run")
    return finished[2]


def calls_by_step(report) -> dict[str, int]:
    return {step: n for step, n in report["usage"]["model_calls_by_step"].items() if n}


def edited_prompts(tmp_path, monkeypatch):
    """A copy of the prompt templates with the query template's text edited (its version left alone)."""
    directory = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPT_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    query = yaml.safe_load((directory / "query.yaml").read_text())
    query["system"] += "Keep it under twenty words.\n"
    (directory / "query.yaml").write_text(yaml.safe_dump(query))
    monkeypatch.setattr(step_base, "load_prompt", lambda name: prompts.load_prompt(name, str(directory)))


CHANGES = {
    "verifier model": ({"verifier": "fake-verifier-2"}, {"image_alone", "verify", "check"}),
    "query template text": ("edit-prompt", {"query"}),
    "proposals_per_image": ({"proposals_per_image": 2}, {"risks"}),
    "respond max_tokens": ({"max_tokens": {"respond_safe": 100}}, {"respond_safe"}),
    "concurrency": ({"concurrency": 1}, set()),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_config_change_reruns_exactly_the_steps_it_determines(change, folder, first_run, make_config, tmp_path,
                                                               monkeypatch):
    base = make_config(folder)
    assert set(calls_by_step(first_run)) == ALL_STEPS and first_run["pairs"] == 3

    overrides, expected = CHANGES[change]
    if overrides == "edit-prompt":
        edited_prompts(tmp_path, monkeypatch)
        overrides = {}
    if "verifier" in overrides:
        overrides = {"verifier": {**base.verifier.model_dump(exclude_none=True), "model": overrides["verifier"]}}
    changed = make_config(folder, **overrides)
    again = run(changed, tmp_path / "run", show_progress=False)
    assert set(calls_by_step(again)) == expected, calls_by_step(again)

    fresh = run(changed, tmp_path / "fresh", show_progress=False)
    assert release_content(tmp_path / "run" / "release") == release_content(tmp_path / "fresh" / "release")
    summary = json.loads((tmp_path / "run" / "shard" / "summary.json").read_text())
    recorded = yaml.safe_load((tmp_path / "run" / "release" / "pipeline_config.yaml").read_text())
    assert summary["config"] == recorded["run"] == changed.to_dict()
    assert summary["fingerprints"] == json.loads((tmp_path / "fresh" / "shard" / "summary.json").read_text())["fingerprints"]
    assert recorded["prompts"]["query"]["sha256"] == step_base.load_prompt("query").digest


def test_switching_back_reuses_the_old_checkpoints_without_asking_the_cache(folder, first_run, make_config, tmp_path):
    base = make_config(folder)
    other = make_config(folder, verifier={**base.verifier.model_dump(exclude_none=True), "model": "fake-verifier-2"})
    run(other, tmp_path / "run", show_progress=False)
    files = sorted(p.name for p in (tmp_path / "run" / "steps").glob("*.jsonl"))  # checkpoints (not the release's stamps)
    back = run(base, tmp_path / "run", show_progress=False)
    assert back["usage"]["model_calls"] == 0 and back["usage"]["cached_calls"] == 0  # every step from its checkpoint
    assert sorted(p.name for p in (tmp_path / "run" / "steps").glob("*.jsonl")) == files
    rows = release_content(tmp_path / "run" / "release")[("pairs", "train")] + release_content(
        tmp_path / "run" / "release").get(("pairs", "test"), [])
    assert {row["verification"]["verifier"] for row in rows} == {"fake-verifier"}


def test_new_weights_under_the_same_model_name_rerun_that_roles_steps(folder, first_run, make_config, tmp_path,
                                                                      monkeypatch):
    """What a backend reports it serves (``identify()``: a Hub commit, a local weights' fingerprint, the
    weights a server names) is part of its steps' fingerprints and of its answers' cache keys, and it is
    recorded as the run's provenance."""
    from modelcalls.scripted_backend import ScriptedBackend

    weights = {"base_model": "fake-verifier", "revision": "c0ffee" * 6 + "beef"}

    async def identify(self):
        return weights if self.model == "fake-verifier" else None

    monkeypatch.setattr(ScriptedBackend, "identify", identify, raising=False)
    again = run(make_config(folder), tmp_path / "run", show_progress=False)
    assert set(calls_by_step(again)) == {"image_alone", "verify", "check"}  # the verifier's steps only, asked again
    summary = json.loads((tmp_path / "run" / "shard" / "summary.json").read_text())
    assert summary["models"] == {"generator": {"backend": "scripted", "model": "fake-generator"},
                                 "verifier": {"backend": "scripted", "model": "fake-verifier", "loaded": weights}}
    recorded = yaml.safe_load((tmp_path / "run" / "release" / "pipeline_config.yaml").read_text())
    assert recorded["shards"][0]["models"] == summary["models"]


def test_the_parsing_code_is_part_of_every_model_steps_fingerprint():
    from generation.engine import fingerprint
    from generation.steps.pipeline import pipeline

    scene = next(step for step in pipeline() if type(step).__name__ == "Scene")
    files = {path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] for path in fingerprint.code_files(scene)}
    assert files == {"steps/scene.py", "steps/base.py", "steps/gates.py", "modelcalls/json_parse.py"}


def test_edited_parsing_code_reparses_every_step_from_the_call_cache(folder, first_run, make_config, tmp_path,
                                                                     monkeypatch):
    """A checkpoint holds parsed records: code that parses or gates differently must not reuse it. The
    answers that were accepted come back from the call cache, so only answers never cached are asked again."""
    from generation.engine import fingerprint

    before = {path.name for path in (tmp_path / "run" / "steps").iterdir()}
    monkeypatch.setattr(fingerprint, "code_digest", lambda *objects: "an edited parser")
    again = run(make_config(folder), tmp_path / "run", show_progress=False)
    written = {path.name for path in (tmp_path / "run" / "steps").iterdir()} - before
    steps_before = {name.rsplit("-", 1)[0] for name in before} - {"ingest"}
    assert steps_before >= {"screen", "scene", "risks", "image_alone", "respond_safe", "respond_unsafe", "check"}
    assert {name.rsplit("-", 1)[0] for name in written} == steps_before  # a new checkpoint for every model step
    assert again["usage"]["cached_calls"] > 0 and again["usage"]["model_calls"] < first_run["usage"]["model_calls"]
    fresh = run(make_config(folder), tmp_path / "fresh", show_progress=False)
    assert release_content(tmp_path / "run" / "release") == release_content(tmp_path / "fresh" / "release")


def test_a_changed_description_reingests_the_photo_and_reruns_what_follows(photo_folder, make_config, tmp_path):
    folder = photo_folder(DESCRIPTIONS)
    run(make_config(folder), tmp_path / "run", show_progress=False)
    manifest = (folder / "MANIFEST.csv").read_text()
    (folder / "MANIFEST.csv").write_text(manifest.replace("a quiet pool", "a quiet pool at night"))
    report = run(make_config(folder), tmp_path / "run", show_progress=False)
    fresh = run(make_config(folder), tmp_path / "fresh", show_progress=False)
    assert report["usage"]["model_calls"] > 0
    assert release_content(tmp_path / "run" / "release") == release_content(tmp_path / "fresh" / "release")


def test_a_new_normaliser_version_reingests_without_asking_the_model_again(folder, first_run, make_config, tmp_path,
                                                                           monkeypatch):
    """`NORMALISE_VERSION` is part of ingest's fingerprint: photos normalised by older code are never reused
    from a checkpoint. Requests that did not change are answered by the call cache, not the model."""
    import generation.steps.ingest as ingest

    before = release_content(tmp_path / "run" / "release")
    old = {p.name for p in (tmp_path / "run" / "steps").glob("ingest-*.jsonl")}
    monkeypatch.setattr(ingest, "NORMALISE_VERSION", ingest.NORMALISE_VERSION + 1)
    again = run(make_config(folder), tmp_path / "run", show_progress=False)
    assert {p.name for p in (tmp_path / "run" / "steps").glob("ingest-*.jsonl")} - old  # a new ingest checkpoint
    assert again["usage"]["model_calls"] == 0 and again["usage"]["cached_calls"] > 0  # every step redone, from the cache
    assert release_content(tmp_path / "run" / "release") == before  # these photos normalise to the same bytes
