"""What keeps a large run cheap and a sharded one honest: each photo indexed once, no request kept by the
scripted backend unless a test asks, a rerun that changes nothing rewrites nothing, merge independent of the
order of its arguments, and the one documented way a sharded run differs from an unsharded one."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image

from generation.engine.sharding import shard_of
from generation.engine.stamps import listing
from generation.release.merge import merge
from generation.run import run
from generation.steps import ingest
from modelcalls.base import ChatRequest
from modelcalls.scripted_backend import ScriptedBackend
from tests.generation_pipeline.conftest import shared_photos, write_folder
from tests.generation_pipeline.test_resume_and_shards import release_content


def test_each_kept_photo_is_indexed_once_in_a_fresh_run_and_in_a_rerun(photo_folder, make_config, tmp_path, monkeypatch):
    remembered = []
    original = ingest.Ingestor.remember
    monkeypatch.setattr(ingest.Ingestor, "remember", lambda self, record: (remembered.append(record.image_id),
                                                                           original(self, record)))
    config = make_config(photo_folder(["a cliff", "a stove", "a pool"]))
    report = run(config, tmp_path / "run", show_progress=False)
    assert sorted(remembered) == sorted(set(remembered)) and len(remembered) == report["funnel"]["ingest"][1] == 3
    remembered.clear()
    for stamp in (tmp_path / "run" / "steps").glob("run-*.json"):
        stamp.unlink()  # not skipped as done (run_stamp): resumed from the checkpoints
    run(config, tmp_path / "run", show_progress=False)  # each checkpointed photo remembered once
    assert len(remembered) == len(set(remembered)) == 3


def test_the_scripted_backend_keeps_no_request_unless_a_test_asks():
    import asyncio

    request = ChatRequest([{"role": "user", "content": "hi"}], name="x")
    quiet, recording = ScriptedBackend(respond=lambda r: "ok"), ScriptedBackend(respond=lambda r: "ok", record_requests=True)
    for backend in (quiet, recording):
        for _ in range(3):
            asyncio.run(backend.chat(request))
    assert quiet.calls == recording.calls == 3
    assert quiet.requests == [] and recording.requests == [request] * 3


def test_a_rerun_that_changes_nothing_rewrites_neither_the_release_nor_the_gallery(photo_folder, make_config, tmp_path):
    config = make_config(photo_folder(["a cliff", "a stove", "a pool"]))
    out = tmp_path / "run"
    first = run(config, out, show_progress=False)
    written = listing([out / "release", out / "gallery.html", out / "gallery"])
    again = run(config, out, show_progress=False)
    assert listing([out / "release", out / "gallery.html", out / "gallery"]) == written  # not one file touched
    assert again["unchanged"] and {k: v for k, v in again.items() if k not in ("usage", "unchanged")} == {
        k: v for k, v in first.items() if k != "usage"}
    assert again["usage"]["model_calls"] == 0

    (out / "release" / "taxonomy.png").unlink()  # an output changed by hand: written again, whole
    third = run(config, out, show_progress=False)
    assert (out / "release" / "taxonomy.png").is_file() and third["problems"] == []


def _near_copy_in_the_other_shard(photo: Path) -> bytes:
    """The same picture re-encoded (a near duplicate: a few dHash bits at most) whose bytes fall into the
    other of two shards."""
    original = hashlib.sha256(photo.read_bytes()).hexdigest()
    image = Image.open(photo).convert("RGB")
    for quality in range(95, 60, -1):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        data = buffer.getvalue()
        if shard_of(hashlib.sha256(data).hexdigest(), 2) != shard_of(original, 2):
            return data
    raise AssertionError("no re-encoding fell into the other shard")


def test_two_shards_merged_in_either_order_give_the_same_release(make_config, tmp_path):
    photos = shared_photos(6)
    descriptions = ["a cliff edge at sunset", "a kitchen stove", "a quiet pool", "a stove in a small flat",
                    "a cliff path in the hills", "an indoor pool with a slide"]
    entries = [(p.name, p.read_bytes(), description) for p, description in zip(photos, descriptions)]
    entries.append(("copy.jpg", _near_copy_in_the_other_shard(photos[0]), "a cliff edge at dawn"))
    config = make_config(write_folder(tmp_path / "photos", entries))
    shards = [str(tmp_path / f"shard-{i}") for i in range(2)]
    for index, out in enumerate(shards):
        run(config, out, shard=(index, 2), show_progress=False)
    forward = merge(shards, str(tmp_path / "forward"))
    backward = merge(list(reversed(shards)), str(tmp_path / "backward"))
    assert forward["problems"] == [] and forward["causes"]["ingest"] == {"duplicate": 1}  # the copy, across shards
    assert release_content(tmp_path / "forward") == release_content(tmp_path / "backward")
    kept_copy = [json.loads(line) for line in (tmp_path / "forward" / "rejects.jsonl").read_text().splitlines()
                 if "found when merging" in line]
    assert len(kept_copy) == 1 and kept_copy[0]["item"] in {"copy.jpg", photos[0].name}


def test_a_sharded_run_differs_from_the_unsharded_one_only_in_the_risks_its_samplers_chose(make_config, tmp_path):
    """The documented difference (docs/generation.md, "Scale"): each shard's coverage sampler counts only
    its own risks, so where a photo proposes more risks than it keeps, the one kept may differ. The photos
    that reach the risk step and their proposals are the same; every released risk is one its photo proposed."""
    photos = shared_photos(8)
    descriptions = [f"{place} cliff stove pool" for place in
                    ("old stone garden wall", "busy summer camp site", "white seaside villa terrace", "quiet farm yard gate",
                     "city park fountain square", "tall hotel roof deck", "small wooden cabin porch", "sunny beach resort bar")]
    config = make_config(write_folder(tmp_path / "photos", [(p.name, p.read_bytes(), d) for p, d in zip(photos, descriptions)]),
                         proposals_per_image=3, risks_per_image=1, gates={"enabled": False})
    whole = run(config, tmp_path / "whole", show_progress=False)
    shards = [str(tmp_path / f"shard-{i}") for i in range(2)]
    for index, out in enumerate(shards):
        run(config, out, shard=(index, 2), show_progress=False)
    merged = merge(shards, str(tmp_path / "merged"))
    proposed = {}
    for path in (tmp_path / "whole" / "steps").glob("risks-*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            proposed[entry["key"]] = {risk["category"] for risk in entry["value"]["ok"]}
    unsharded, sharded = (release_content(root) for root in (tmp_path / "whole" / "release", tmp_path / "merged"))
    pairs = {key[1]: rows for key, rows in sharded.items() if key[0] == "pairs"}
    assert merged["pairs"] == whole["pairs"] == 8
    assert {row["image_id"] for rows in pairs.values() for row in rows} == \
        {row["image_id"] for key, rows in unsharded.items() if key[0] == "pairs" for row in rows}
    assert all(row["risk_category"] in proposed[row["image_id"]] for rows in pairs.values() for row in rows)
