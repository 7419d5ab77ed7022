"""The HTML gallery, rendered by headless chromium: pairs with their thumbnails (separate files, loaded
lazily), both responses and verdicts, category and stage selectors that go to their own pages, every reject
with its reason, and static pages of PAGE_SIZE items at any size."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

import rms_dataset as rms
from generation import gallery
from generation.gallery import main as gallery_main, write_gallery
from generation.run import run
from tests.generation_pipeline.test_resume_and_shards import DESCRIPTIONS

THUMBNAIL = r"<img alt=\"([0-9a-f]{16})\" loading=\"lazy\" src=\"([^\"]+)\">"


@pytest.fixture
def release(photo_folder, make_config, tmp_path):
    run(make_config(photo_folder(DESCRIPTIONS)), tmp_path / "run", show_progress=False)
    return tmp_path / "run"


def _pairs(root):
    return [row for paths in rms.find_shards(str(root), rms.PAIRS).values() for p in paths for row in pq.read_table(p).to_pylist()]


def _shown_thumbnails(dom: str, page: Path, kind: str) -> dict[str, Path]:
    return {image_id: (page.parent / link).resolve() for image_id, link in
            re.findall(rf'<article class="{kind}"[^>]*>' + THUMBNAIL, dom)}


def test_gallery_renders_every_pair_and_reject_in_chromium(release, chromium, tmp_path):
    assert gallery_main(argparse.Namespace(release=str(release), out=None)) == 0
    page = release / "gallery.html"
    dom = chromium.dump_dom(page)
    pairs = _pairs(release / "release")
    rejects = (release / "release" / "rejects.jsonl").read_text().splitlines()
    assert dom.count("<article class=\"pair\"") == len(pairs) > 0
    thumbnails = _shown_thumbnails(dom, page, "pair")
    assert len(thumbnails) == len({row["image_id"] for row in pairs}) and all(p.is_file() for p in thumbnails.values())
    assert dom.count("<tr class=\"reject\">") == len(rejects)
    candidates = [r for r in map(json.loads, rejects) if r["kind"] == "pair"]
    assert len(re.findall(r'<article class="candidate"[^>]*>' + THUMBNAIL, dom)) == len(candidates) > 0
    for reject in map(json.loads, rejects):
        assert reject["reason"].split("(")[0].replace("'", "&#x27;").strip()[:40] in dom.replace("'", "&#x27;")
    for row in pairs:
        assert row["text"].replace("'", "&#x27;") in dom.replace("'", "&#x27;")
    assert "Safe response:" in dom and "Unsafe response:" in dom and "text_alone: safe" in dom
    assert 'id="shown-count">%d<' % len(pairs) in dom


def test_the_category_in_the_url_opens_that_category_s_page(release, chromium):
    write_gallery(release)
    counts = Counter(row["risk_category"] for row in _pairs(release / "release"))
    category, expected = sorted(counts.items())[0]
    page = release / "gallery.html"
    dom = chromium._run("--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri() + f"?category={category}")
    assert 'id="shown-count">%d<' % expected in dom
    assert re.findall(r'<article class="pair" data-category="([^"]+)"', dom) == [category] * expected
    options = dict(re.findall(r"<option value='([^']+)' data-name='([^']+)'", page.read_text()))
    for link, name in options.items():  # every selector entry is a page that exists
        assert (page.parent / link).is_file(), (name, link)


def test_large_galleries_are_paged_and_every_pair_is_on_exactly_one_page_of_each_view(release, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE_SIZE", 2)
    out = write_gallery(release, release / "paged.html")
    pairs = _pairs(release / "release")
    folder = release / "paged"

    def ids(page: Path) -> list[str]:
        return re.findall(r"<article class='pair' data-category='[^']*' data-id='([^']+)'", page.read_text())

    seen, page = [], out
    while True:  # follow the "next" links of the view of all pairs
        found = ids(page)
        assert 0 < len(found) <= 2
        seen += found
        link = re.search(r"<section id='pairs'><nav class='pages'>.*?<a class='next' href='([^']+)'>", page.read_text())
        if not link:
            break
        page = (page.parent / link.group(1)).resolve()
    assert sorted(seen) == sorted(row["id"] for row in pairs) and len(pairs) > 2
    for category in {row["risk_category"] for row in pairs}:
        pages = sorted(folder.glob(f"pairs-{gallery._slug(category)}-*.html"))
        shown = [i for p in pages for i in ids(p)]
        assert sorted(shown) == sorted(row["id"] for row in pairs if row["risk_category"] == category)


def test_gallery_of_the_committed_sample_release(sample_release, chromium, tmp_path):
    out = write_gallery(sample_release, tmp_path / "sample.html")
    dom = chromium.dump_dom(out)
    assert dom.count("<article class=\"pair\"") == min(len(_pairs(sample_release)), gallery.PAGE_SIZE) > 0
    thumbnails = _shown_thumbnails(dom, out, "pair")
    assert thumbnails and all(p.parent == tmp_path / "sample" / "thumbnails" and p.is_file() for p in thumbnails.values())
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


def test_a_run_gallery_links_the_thumbnails_ingest_made_and_makes_the_missing_ones(release):
    """Ingest leaves a small preview of every kept photo in RUN/thumbnails/ (named by the photo's id, the
    hash of its bytes); the gallery links those and makes only the missing ones, into gallery/thumbnails/."""
    page = write_gallery(release, release / "first.html")
    linked = _shown_thumbnails(page.read_text().replace("'", '"'), page, "pair")
    assert linked and all(path.parent == (release / "thumbnails").resolve() for path in linked.values())
    assert all(256 <= max(Image.open(path).size) < 512 for path in linked.values())  # photos of 640 px

    for path in (release / "thumbnails").iterdir():
        path.unlink()
    page = write_gallery(release, release / "second.html")
    made = _shown_thumbnails(page.read_text().replace("'", '"'), page, "pair")
    assert made.keys() == linked.keys()
    assert all(path.parent == (release / "second" / "thumbnails").resolve() for path in made.values())
    assert all(256 <= max(Image.open(path).size) < 512 for path in made.values())
