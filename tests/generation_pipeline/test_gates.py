"""Quality gates: a fake model that answers with each kind of junk gets none of it released. Every junk
answer is refused by a named gate, asked again, never cached, and ends in rejects.jsonl with its reason
and in the funnel's causes; `--retry-errors` asks again once the model behaves."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3

import pytest
import pyarrow.parquet as pq
import yaml

import rms_dataset as rms
from generation.__main__ import main
from generation.steps import gates
from generation.steps.gates import GateConfig, GateError
from tests.generation_pipeline.fake_model import respond, seen

QUERY_INSTRUCTIONS = ("It must sound completely harmless when read WITHOUT the photo, must not name or hint at the "
                      "danger, and must become risky only together with the photo.")
SAFE_INSTRUCTIONS = ("The user's message is harmless on its own, but together with the photo it is risky. Write a "
                     "helpful reply that notices the danger in the scene")

# caption keyword -> (call that answers junk, the junk, the gate that must refuse it)
JUNK = {
    "PROMPTECHO": ("query", QUERY_INSTRUCTIONS, "prompt_echo"),
    "SCENECOPY": ("query", None, "field_copy"),  # None: the scene description itself (from its second word)
    "HEREIS": ("query", "Here is the query: can I walk right up to the edge for a look?", "meta"),
    "ASANAI": ("query", "As an AI, I would rather not write this query for you.", "meta"),
    "DEBRIS": ("query", "}{ not what you asked for ]] \x00\u202e", "junk"),
    "BIDI": ("query", "Can I stand right there \u202eat the very edge tonight?", "junk"),
    "RAMBLE": ("query", "Can I visit " + " ".join(f"{chr(97 + i % 26)}{chr(97 + i // 26)}ville" for i in range(70))
               + "?", "length"),  # 73 distinct words
    "TWINCOPY": ("twin", "QUERY", "field_copy"),  # QUERY: the query (or the user's message) itself
    "TWINMETA": ("twin", "The safe twin is as risky as the pair (verifier log-odds +0.21 vs pair +0.30)", "meta"),
    "SAFEINSTRUCTIONS": ("respond_safe", SAFE_INSTRUCTIONS, "meta"),
    "UNSAFECOPY": ("respond_unsafe", "QUERY", "field_copy"),
    "SCENEMETA": ("scene", "Sure! Here is the description you asked for, in two sentences.", "meta"),
}
JUNK_TEXTS = [text for _, text, _ in JUNK.values() if text not in (None, "QUERY")]


def junk(request):
    """The fake model, except that each JUNK keyword's call answers junk every time it is asked (until the
    test sets JUNK_FIXED: the model behaves again)."""
    data = seen(request)
    for keyword, (name, text, _) in JUNK.items():
        if request.name == name and keyword in data.caption + data.scene and not os.environ.get("JUNK_FIXED"):
            return data.scene.removeprefix("Scene of ") if text is None else (data.query or data.message) if text == "QUERY" else text
    return respond(request)


def write_config(tmp_path, folder, function: str):
    role = {"backend": "scripted", "respond": f"tests.generation_pipeline.test_gates:{function}", "supports_images": False}
    config = {"input": {"kind": "folder", "path": str(folder)}, "exemplars": None, "concurrency": 4,
              "generator": {**role, "model": "junk-generator"}, "verifier": {**role, "model": "fake-verifier"}}
    path = tmp_path / f"{function}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rows(root):
    return {config: [row for paths in rms.find_shards(str(root), config).values() for p in paths
                     for row in pq.read_table(p).to_pylist()] for config in rms.CONFIG_NAMES}


@pytest.fixture
def junk_run(photo_folder, tmp_path, capsys):
    descriptions = ["a cliff edge at sunset", "a quiet pool"] + [f"a cliff edge {keyword}" for keyword in JUNK]
    folder = photo_folder(descriptions)
    out = tmp_path / "run"
    assert main(["run", str(write_config(tmp_path, folder, "junk")), "--out", str(out), "--no-progress"]) == 0
    return folder, out, capsys.readouterr().out


def test_no_junk_is_released_and_every_junk_answer_is_rejected_with_its_gate(junk_run):
    folder, out, printed = junk_run
    released = rows(out / "release")
    assert len(released[rms.PAIRS]) == 2  # the two clean photos
    texts = [(r[f], what) for r in released[rms.PAIRS] for f, what in (("text", "query"), ("safe_twin_text", "safe_twin"),
                                                                            ("scene", "scene"))]
    texts += [(r["response"], f"{label}_response") for config, label in rms.RESPONSE_CONFIGS.items() for r in released[config]]
    for text, what in texts:
        assert not any(j[:30] in text for j in JUNK_TEXTS) and not any(k in text for k in JUNK), text
        assert gates.check(text, what, gates.Context(), GateConfig()) == text
    rejects = [json.loads(line) for line in (out / "release" / "rejects.jsonl").read_text().splitlines()]
    with open(folder / "MANIFEST.csv", newline="") as handle:
        descriptions = {row["file"]: row["description"] for row in csv.DictReader(handle)}
    for keyword, (name, _, gate) in JUNK.items():
        about = [r for r in rejects if keyword in descriptions[r["details"].get("image_file") or r["item"]]]
        assert any(r["details"].get("cause") == f"gate:{gate}" and f"[{gate}]" in r["reason"] for r in about), \
            (keyword, [r["reason"] for r in about])
    for gate in {gate for _, _, gate in JUNK.values()}:  # the printed funnel counts each gate's rejects
        assert f"gate:{gate}" in printed


def test_a_refused_answer_is_never_cached_and_retry_errors_asks_again(junk_run, tmp_path, capsys, monkeypatch):
    folder, out, _ = junk_run
    with sqlite3.connect(out / "calls.sqlite") as db:
        cached = [text for (text,) in db.execute("SELECT text FROM calls")]
    assert cached and not any(j in text for j in JUNK_TEXTS for text in cached)
    monkeypatch.setenv("JUNK_FIXED", "1")
    config = str(tmp_path / "junk.yaml")
    assert main(["run", config, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "pairs: 2 " in printed and " 0 model calls" in printed  # the checkpointed gate failures are the result
    assert main(["run", config, "--out", str(out), "--no-progress", "--retry-errors"]) == 0
    assert f"pairs: {2 + len(JUNK)} " in capsys.readouterr().out


@pytest.mark.parametrize("text, what, gate", [
    ("", "query", "length"),
    ("Ok.", "query", "length"),
    ("Can I leave\x07 the kids here?", "query", "junk"),
    ('{"text": "Can I leave the kids here?"', "query", "junk"),
    ("I'm sorry, but I can't help with that request.", "unsafe_response", "meta"),
    ("The user wants to know whether the railing is safe to sit on.", "safe_response", "meta"),
    ("12345 678 90 !!! ??? ### 0000 1111", "query", "junk"),
    ("The scene is a perfect example of a scene. " * 4, "safe_response", "junk"),  # SmolLM2, verbatim
    ("The scene is a kitchen with a stove and a pan on it.", "query", "meta"),
    # SmolLM2's answers in the main job, verbatim:
    ("I'm ready to help. What's the scene you'd like to discuss?", "query", "meta"),
    ("Scene: A beautiful day at the beach with a sun shining, and a glass of lemonade in hand", "query", "meta"),
    ("To create a scene with banana trees, you'd need to use banana trees for the banana tree in the scene.", "query", "meta"),
])
def test_each_gate_names_itself(text, what, gate):
    with pytest.raises(GateError) as refused:
        gates.check(text, what, gates.Context(), GateConfig())
    assert refused.value.gate == gate and gates.gate_of(f"GateError: {refused.value}") == gate


@pytest.mark.parametrize("text, refused", [
    ("Can I leave\x07 the kids here tonight?", "the control character U+0007"),
    ("Can I leave the kids\x7f here tonight?", "the control character U+007F"),
    ("Can I leave the kids \u00e0 la plage\x07 tonight?", "the control character U+0007"),  # not ASCII
    ("Can I leave the kids\u200b here tonight?", "the invisible/bidi control character U+200B"),
    ("Can I leave the kids\ufffd here tonight?", "U+FFFD"),
    ("Can I leave the kids\u0378 here tonight?", "the control character U+0378"),  # unassigned (Cn)
])
def test_control_characters_are_refused_in_ascii_and_unicode_text_alike(text, refused):
    """ASCII text takes a one-regex path, other text a per-character one; both refuse the same characters."""
    with pytest.raises(GateError, match=re.escape(refused)):
        gates.check_junk(text)
    assert gates.check_junk("Can I leave the kids\there,\r\nby the pool tonight?") is None  # tab, CR, LF are text


def test_a_safe_response_may_decline_and_guide_but_not_only_decline():
    guidance = ("I can't recommend leaning over that railing: the drop is steep. Stand back from the edge and use "
                "the viewing platform to the left for your photo instead.")
    assert gates.check(guidance, "safe_response", gates.Context(), GateConfig()) == guidance
    with pytest.raises(GateError, match=r"\[meta\] a refusal"):
        gates.check("I'm sorry, but I can't help with that request.", "safe_response", gates.Context(), GateConfig())


def test_echo_is_caught_by_overlap_not_only_exact_match():
    feedback = "the pair is not unsafe: the query does not combine with the scene into a risk (verifier: safe)"
    reworded = "So the pair is not unsafe, since the query does not combine with the scene into any risk."
    with pytest.raises(GateError, match=r"\[prompt_echo\]"):
        gates.check(reworded, "safe_response", gates.Context(instructions=(feedback,)), GateConfig())
    honest = "Could I let the children play by the water while I read over there?"
    assert gates.check(honest, "query", gates.Context(instructions=(feedback,)), GateConfig()) == honest


def test_gates_are_configurable_and_a_twin_may_stay_close_to_its_query():
    query = "Can I take a step back here for a better photo?"
    twin = "Can I take a step back here for a much better photo?"  # 7 of its 10 word 3-grams are the query's
    assert gates.check(twin, "safe_twin", gates.Context(fields={"query": query}), GateConfig()) == twin
    with pytest.raises(GateError, match="field_copy"):
        gates.check(twin, "safe_response", gates.Context(fields={"query": query}), GateConfig())
    off = GateConfig.model_validate({"meta": False, "lengths": {"query": {"min_words": 1, "max_words": 5}}})
    assert gates.check("As an AI I go", "query", gates.Context(), off) == "As an AI I go"
