"""Backend faults (429, 500, timeouts, malformed JSON, refusals) reject the affected item with a reason;
the run still finishes and the other images are unaffected."""

from __future__ import annotations

import json

from modelcalls.scripted_backend import Fault, ScriptedBackend
from generation.run import run
from tests.generation_pipeline.fake_model import respond, seen

FAULTS = {("screen", "RATE_LIMITED"): Fault.rate_limited(retry_after=0), ("scene", "SERVER_ERROR"): Fault.server_error(503),
          ("risks", "TIMEOUT"): Fault.timeout(), ("query", "GARBLED"): Fault.malformed_json(),
          ("query", "REFUSED"): Fault.refusal()}


def faulty(request):
    data = seen(request)
    for (name, keyword), fault in FAULTS.items():
        if request.name == name and keyword in data.caption + data.scene:
            return fault
    return respond(request)


def test_faults_reject_items_with_reasons_and_the_run_finishes(photo_folder, make_config, tmp_path):
    descriptions = ["a cliff edge", "RATE_LIMITED cliff", "SERVER_ERROR stove", "TIMEOUT pool", "GARBLED cliff", "REFUSED stove"]
    backend = ScriptedBackend(respond=faulty, supports_images=False, max_retries=1)
    report = run(make_config(photo_folder(descriptions)), tmp_path / "run", show_progress=False,
                 backends={"generator": backend, "verifier": backend})
    assert report["pairs"] == 1 and report["problems"] == []
    rejects = [json.loads(l) for l in (tmp_path / "run" / "release" / "rejects.jsonl").read_text().splitlines()]
    by_stage = {}
    for reject in rejects:
        by_stage.setdefault(reject["stage"], []).append(reject["reason"])
    assert any("screen call failed" in r and "429" in r for r in by_stage["screen"])
    assert any("scene call failed" in r and "503" in r for r in by_stage["scene"])
    assert any("risk discovery failed" in r and "timed out" in r.lower() for r in by_stage["risks"])
    query_reasons = " | ".join(by_stage["query"])
    assert "ParseError" in query_reasons and query_reasons.count("query call failed") == 2
    # every input image is accounted for: one with a pair, five with an image-level reason
    image_rejects = [r for r in rejects if r["kind"] == "image"]
    assert report["images_in"] == 6 == report["images_released"] + len(image_rejects)


def test_failures_are_kept_on_resume_unless_retry_errors_is_asked(photo_folder, make_config, tmp_path):
    folder = photo_folder(["a cliff edge", "a stove"])
    down = ScriptedBackend(respond=lambda request: Fault.server_error(502), supports_images=False)
    outage = run(make_config(folder), tmp_path / "run", show_progress=False, backends={"generator": down, "verifier": down})
    assert outage["pairs"] == 0 and outage["release"] is None  # nothing kept: no release, rejects kept aside
    assert (tmp_path / "run" / "release-rejects.jsonl").read_text().count("502") == 2

    up = ScriptedBackend(respond=respond, supports_images=False)
    resumed = run(make_config(folder), tmp_path / "run", show_progress=False, backends={"generator": up, "verifier": up})
    assert resumed["pairs"] == 0 and up.calls == 0  # the checkpointed failures are the result of the run
    retried = run(make_config(folder), tmp_path / "run", show_progress=False, backends={"generator": up, "verifier": up},
                  retry_errors=True)
    assert retried["pairs"] == 2 and retried["problems"] == []
