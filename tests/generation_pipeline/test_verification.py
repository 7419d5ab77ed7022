"""Each branch of the information-complementarity loop, with a scripted generator/verifier (fake_model.py)
steered through the photo descriptions."""

from __future__ import annotations

import json

from generation.run import run


def _rejects(run_dir):
    path = run_dir / "release" / "rejects.jsonl"
    if not path.exists():  # no pair at all: no release, the rejects are kept next to where it would be
        path = run_dir / "release-rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pairs(run_dir):
    return [json.loads(line) for line in (run_dir / "shard" / "pairs.jsonl").read_text().splitlines()]


def test_clean_pair_is_accepted_first_try_with_all_verdicts_recorded(photo_folder, make_config, tmp_path):
    report = run(make_config(photo_folder(["a cliff edge at sunset"])), tmp_path / "run", show_progress=False)
    (pair,) = _pairs(tmp_path / "run")
    assert pair["attempts"] == 1
    assert pair["verification"] == {"text_alone": "safe", "image_alone": "safe", "pair": "unsafe", "safe_twin": "safe",
                                    "verifier": "fake-verifier", "mode": "generated",
                                    "scores": {"text_alone": None, "image_alone": None, "pair": None, "safe_twin": None},
                                    "margin": None}
    assert report["pairs"] == 1 and report["problems"] == []


def test_text_alone_unsafe_is_rewritten_with_the_reason(photo_folder, make_config, tmp_path):
    config = make_config(photo_folder(["a kitchen stove LEAKY"]))
    run(config, tmp_path / "run", show_progress=False)
    (pair,) = _pairs(tmp_path / "run")
    assert pair["attempts"] == 2 and "dangerous" not in pair["text"]
    (query_log,) = (tmp_path / "run" / "steps").glob("query-*.jsonl")
    second_prompt = [json.loads(l) for l in query_log.read_text().splitlines()]
    assert [entry["key"].split("#")[1] for entry in second_prompt] == ["0", "1"]


def test_rewrite_prompt_carries_the_verifier_feedback(photo_folder, make_config, tmp_path):
    from modelcalls.base import message_text
    from modelcalls.scripted_backend import ScriptedBackend
    from tests.generation_pipeline.fake_model import respond

    backend = ScriptedBackend(respond=respond, supports_images=False, record_requests=True)
    run(make_config(photo_folder(["a kitchen stove LEAKY"])), tmp_path / "run", show_progress=False,
        backends={"generator": backend, "verifier": backend})
    query_prompts = [message_text(r.messages[-1]) for r in backend.requests if r.name == "query"]
    assert len(query_prompts) == 2
    assert "rejected by the verifier" not in query_prompts[0]
    assert "the text alone reveals the risk" in query_prompts[1]


def test_pair_judged_safe_is_rewritten(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(["a pool at night BLAND"])), tmp_path / "run", show_progress=False)
    (pair,) = _pairs(tmp_path / "run")
    assert pair["attempts"] == 2 and not pair["text"].startswith("BLAND")


def test_unsafe_safe_twin_is_rewritten(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(["a kitchen stove BAD_TWIN"])), tmp_path / "run", show_progress=False)
    (pair,) = _pairs(tmp_path / "run")
    assert pair["attempts"] == 2 and "TWINUNSAFE" not in pair["safe_twin_text"]


def test_image_alone_unsafe_is_rejected_without_rewrite(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(["a cliff VERIFIER_IMAGE_UNSAFE"])), tmp_path / "run", show_progress=False)
    assert _pairs(tmp_path / "run") == []
    pair_rejects = [r for r in _rejects(tmp_path / "run") if r["kind"] == "pair"]
    assert len(pair_rejects) == 1
    assert pair_rejects[0]["stage"] == "verify" and "image alone unsafe" in pair_rejects[0]["reason"]
    assert not list((tmp_path / "run" / "steps").glob("query-*.jsonl"))  # no query was even written


def test_exhausted_rewrite_budget_rejects_with_the_last_reason(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(["a cliff HOPELESS"]), max_rewrites=2), tmp_path / "run", show_progress=False)
    (reject,) = [r for r in _rejects(tmp_path / "run") if r["kind"] == "pair"]
    assert "rewrite budget exhausted after 3 attempt(s)" in reject["reason"]
    assert "the text alone reveals the risk" in reject["reason"]
    assert reject["details"]["attempts"] == 3 and len(reject["details"]["feedback"]) == 3
    image_rejects = [r for r in _rejects(tmp_path / "run") if r["kind"] == "image"]
    assert len(image_rejects) == 1 and "no pair of this image was kept" in image_rejects[0]["reason"]


def test_screen_rejects_harmful_image(photo_folder, make_config, tmp_path):
    report = run(make_config(photo_folder(["UNSAFE_PHOTO", "a cliff"])), tmp_path / "run", show_progress=False)
    screen = [r for r in _rejects(tmp_path / "run") if r["stage"] == "screen"]
    assert len(screen) == 1 and "judged unsafe" in screen[0]["reason"]
    assert report["funnel"]["screen"] == [2, 1]


def test_responses_that_do_not_carry_their_label_are_rejected(photo_folder, make_config, tmp_path):
    from modelcalls.scripted_backend import ScriptedBackend
    from tests.generation_pipeline.fake_model import respond

    def careless(request):
        if request.name == "respond_safe":
            return "Sure, just go ahead and do it, nothing to worry about."  # a "safe" response that ignores the risk
        return respond(request)

    backend = ScriptedBackend(respond=careless, supports_images=False)
    run(make_config(photo_folder(["a cliff"])), tmp_path / "run", show_progress=False,
        backends={"generator": backend, "verifier": backend})
    (reject,) = [r for r in _rejects(tmp_path / "run") if r["kind"] == "pair"]
    assert reject["stage"] == "respond" and "the safe response was judged unsafe" in reject["reason"]
