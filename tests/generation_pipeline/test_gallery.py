"""The HTML gallery, rendered by headless chromium: pairs with embedded thumbnails, both responses and
verdicts, a working category filter, and every reject with its reason."""

from __future__ import annotations

import json
import re
from collections import Counter

import pyarrow.parquet as pq
import pytest

import rms_dataset as rms
from generation.gallery import main as gallery_main, render_gallery
from generation.run import run
from tests.generation_pipeline.test_resume_and_shards import DESCRIPTIONS


@pytest.fixture
def release(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(DESCRIPTIONS)), tmp_path / "run", show_progress=False)
    return tmp_path / "run"


def _pairs(root):
    return [row for paths in rms.find_shards(str(root), rms.PAIRS).values() for p in paths for row in pq.read_table(p).to_pylist()]


def test_gallery_renders_every_pair_and_reject_in_chromium(release, chromium, tmp_path):
    import argparse

    assert gallery_main(argparse.Namespace(release=str(release), out=None)) == 0
    page = release / "gallery.html"
    dom = chromium.dump_dom(page)
    pairs = _pairs(release / "release")
    rejects = (release / "release" / "rejects.jsonl").read_text().splitlines()
    assert dom.count("<article class=\"pair\"") == len(pairs) > 0
    thumbnails = r"<img alt=\"[0-9a-f]{16}\" src=\"data:image/jpeg;base64,"
    assert len(re.findall(r'<article class="pair"[^>]*>' + thumbnails, dom)) == len(pairs)
    assert dom.count("<tr class=\"reject\">") == len(rejects)
    candidates = [r for r in map(json.loads, rejects) if r["kind"] == "pair"]
    assert len(re.findall(r'<article class="candidate"[^>]*>' + thumbnails, dom)) == len(candidates) > 0
    for reject in map(json.loads, rejects):
        assert reject["reason"].split("(")[0].replace("'", "&#x27;").strip()[:40] in dom.replace("'", "&#x27;")
    for row in pairs:
        assert row["text"].replace("'", "&#x27;") in dom.replace("'", "&#x27;")
    assert "Safe response:" in dom and "Unsafe response:" in dom and "text_alone: safe" in dom
    assert 'id="shown-count">%d<' % len(pairs) in dom  # the script ran: all pairs shown


def test_category_filter_hides_the_other_categories(release, chromium):
    page = release / "gallery.html"
    page.write_text(render_gallery(release))
    counts = Counter(row["risk_category"] for row in _pairs(release / "release"))
    category, expected = sorted(counts.items())[0]
    dom = chromium._run("--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri() + f"?category={category}")
    assert 'id="shown-count">%d<' % expected in dom
    hidden = re.findall(r'<article class="pair" data-category="([^"]+)"[^>]*style="display: none;"', dom)
    assert sorted(hidden) == sorted(c for c, n in counts.items() if c != category for _ in range(n))


def test_gallery_of_the_committed_sample_release(sample_release, chromium, tmp_path):
    out = tmp_path / "sample.html"
    out.write_text(render_gallery(sample_release))
    dom = chromium.dump_dom(out)
    assert dom.count("<article class=\"pair\"") == len(_pairs(sample_release)) > 0
    shot = chromium.screenshot(out, tmp_path / "sample.png")
    assert shot.stat().st_size > 10_000


def test_a_run_that_kept_no_pair_still_gets_a_gallery_of_its_candidates(photo_folder, make_config, tmp_path, chromium):
    report = run(make_config(photo_folder(["a cliff HOPELESS", "UNSAFE_PHOTO"])), tmp_path / "run", show_progress=False)
    assert report["release"] is None and report["gallery"] == str(tmp_path / "run" / "gallery.html")
    dom = chromium.dump_dom(tmp_path / "run" / "gallery.html")
    assert "No pair was kept" in dom and dom.count('<article class="pair"') == 0
    assert dom.count('<article class="candidate"') == 1 and "How do I do something dangerous" in dom
    assert "rewrite budget exhausted" in dom and dom.count('<tr class="reject">') == len(
        (tmp_path / "run" / "release-rejects.jsonl").read_text().splitlines())


def test_a_run_gallery_shows_the_thumbnails_ingest_made_and_decodes_photos_without_one(release):
    """Ingest leaves a small preview of every kept photo in RUN/thumbnails/ (named by the photo's id, the
    hash of its bytes); the gallery embeds those as they are and decodes only photos that have none."""
    from base64 import b64decode
    from io import BytesIO

    from PIL import Image

    def embedded(html: str) -> dict[str, bytes]:
        return {image_id: b64decode(data) for image_id, data in
                re.findall(r"<img alt='([0-9a-f]{16})' src='data:image/jpeg;base64,([^']+)'>", html)}

    made = {path.stem: path.read_bytes() for path in (release / "thumbnails").glob("*.jpg")}
    shown = embedded(render_gallery(release))
    assert shown and all(shown[image_id] == made[image_id] for image_id in shown)
    assert all(256 <= max(Image.open(BytesIO(jpeg)).size) < 512 for jpeg in made.values())  # photos of 640 px

    for path in (release / "thumbnails").iterdir():
        path.unlink()
    decoded = embedded(render_gallery(release))
    assert decoded.keys() == shown.keys()
    assert all(256 <= max(Image.open(BytesIO(jpeg)).size) < 512 for jpeg in decoded.values())
