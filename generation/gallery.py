"""Render an HTML gallery of a run or a release, for any size: the released pairs (thumbnail, query, safe
twin, risk, verdicts with the measured scores, both responses), the rejected candidates (what the model wrote
and why it was refused) and every reject with its reason.

  python -m generation gallery runs/sample            # writes runs/sample/gallery.html (a run dir, with or without a release)
  python -m generation gallery sample_release --out /tmp/sample.html

Static pages of `PAGE_SIZE` items: `gallery.html` is the first page of all pairs (and of the rejected
candidates and the rejects, each with a link to the rest); the pages of every view (all pairs, the pairs of
one risk category, the candidates rejected at one stage, the rejects) are in the folder beside it
(`gallery/`). The category and stage selectors go to their view's pages; `?category=NAME` on gallery.html
too. Thumbnails are separate files, loaded lazily: the previews ingest made in a run's `thumbnails/`, or
made once from a bare release's photos (read a row group at a time) into `gallery/thumbnails/`. Only the
columns shown are read. `python -m generation run` writes RUN/gallery.html itself, also when no pair was
kept, and skips it when nothing it shows changed (a stamp in RUN/steps/).
"""

from __future__ import annotations

import argparse
import html
import io
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

import rms_dataset as rms
from generation.engine import fingerprint as fp
from generation.engine.outputs import locked
from generation.engine.stamps import Stamp, listing
from generation.steps.ingest import THUMBNAIL_SIDE, thumbnail_jpeg
from typed_config import ConfigError

PAGE_SIZE = 100

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
.pair{display:flex;gap:1em;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em;margin:1em 0}
.pair img{width:256px;max-height:256px;object-fit:contain;border-radius:4px;flex:none}
.query{font-size:1.1em;font-weight:600}.twin{color:#2a7a2a}.risk{color:#a33}
.verdicts span{display:inline-block;margin-right:.6em;padding:0 .4em;border-radius:4px;background:#eee}
.verdicts .unsafe{background:#f6d5d5}.verdicts .safe{background:#d5f0d5}
.response{white-space:pre-wrap;border-left:3px solid #ccc;padding-left:.6em;margin:.3em 0}
.response.safe{border-color:#3a3}.response.unsafe{border-color:#c33}
.candidate{display:flex;gap:1em;background:#fff8f0;border:1px solid #e8d0b0;border-radius:8px;padding:1em;margin:1em 0}
.candidate img{width:192px;max-height:192px;object-fit:contain;flex:none}.rejected{color:#a33}
nav.pages{margin:.5em 0}nav.pages a{margin-right:.6em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
"""

# The selectors go to their view's first page; ?category=NAME on the first page goes to that category's view.
_SCRIPT = """
document.addEventListener('DOMContentLoaded',function(){
['category-filter','stage-filter'].forEach(function(id){var s=document.getElementById(id);
if(s){s.addEventListener('change',function(){if(s.value)location.href=s.value;});}});
var p=new URLSearchParams(location.search).get('category');var s=document.getElementById('category-filter');
if(p&&s){var o=Array.prototype.find.call(s.options,function(o){return o.dataset.name===p;});
if(o&&o.value&&!o.selected)location.replace(o.value);}});
"""

_PAIR_COLUMNS = ["id", "image_id", "image_source", "image_license", "scene", "text", "risk_category", "risk_subcategory",
                 "risk_rationale", "safe_twin_text", "verification", "generator"]


@dataclass
class GallerySource:
    """Where the gallery reads from: a release (may be None: no pair kept), the rejects file, and the run's
    images/ (photos of rejected candidates) and thumbnails/ (made by ingest); both None for a bare release."""

    title: str
    release: Path | None
    rejects: Path | None
    images: Path | None
    default_out: Path
    thumbnails: Path | None = None
    steps: Path | None = None  # a run's steps/ folder: the gallery is stamped there


def resolve_source(path: str | Path) -> GallerySource:
    path = Path(path)
    if (path / rms.CARD_FILE).exists():
        return GallerySource(str(path), path, path / "rejects.jsonl", None, path / "gallery.html")
    if (path / "shard").is_dir() or (path / "release" / rms.CARD_FILE).exists():
        release = path / "release" if (path / "release" / rms.CARD_FILE).exists() else None
        rejects = release / "rejects.jsonl" if release else path / "release-rejects.jsonl"
        return GallerySource(str(path), release, rejects, path / "images", path / "gallery.html", path / "thumbnails",
                             path / "steps")
    raise FileNotFoundError(f"{path}: neither a release (README.md + shards) nor a run directory (shard/, release/)")


def _shards(release: Path | None, config: str) -> Iterator[tuple[str, str]]:
    for split, paths in sorted(rms.find_shards(str(release), config).items()) if release else ():
        for path in paths:
            yield split, path


def _verdict(value) -> str:
    """A verdict or label as its name: the parquet stores the class index (0 = safe, 1 = unsafe)."""
    return rms.VERDICT.int2str(value) if isinstance(value, int) else str(value or "")


def _pairs(release: Path | None) -> list[dict]:
    """Every pair's shown fields (no image), with its split, sorted by category then id."""
    rows = []
    for split, path in _shards(release, rms.PAIRS):
        for row in pq.read_table(path, columns=_PAIR_COLUMNS).to_pylist():
            verification = dict(row["verification"] or {})
            verification.update({check: _verdict(verification.get(check)) for check in rms.CHECKS})
            rows.append({**row, "verification": verification, "split": split})
    return sorted(rows, key=lambda row: (row["risk_category"], row["id"]))


def _responses(release: Path | None) -> dict[tuple[str, str], str]:
    return {(row["pair_id"], _verdict(row["label"])): row["response"]
            for config in (rms.SAFE_RESPONSES, rms.UNSAFE_RESPONSES) for _, path in _shards(release, config)
            for row in pq.read_table(path, columns=["pair_id", "label", "response"]).to_pylist()}


class Thumbnails:
    """The thumbnail file of each photo shown, as a link relative to the pages: ingest's preview in the run's
    thumbnails/ when there is one, else one made here (in `own`) from the run's photo or the release's bytes."""

    def __init__(self, source: GallerySource, own: Path):
        self.source, self.own = source, own
        self.links: dict[str, Path] = {}

    def prepare(self, image_ids: set[str]) -> None:
        missing = set()
        for image_id in image_ids:
            ready = self.source.thumbnails / f"{image_id}.jpg" if self.source.thumbnails else None
            if ready is not None and ready.is_file():
                self.links[image_id] = ready
            else:
                missing.add(image_id)
        if not missing:
            return
        self.own.mkdir(parents=True, exist_ok=True)
        for image_id in sorted(missing):  # a run's photo (a rejected candidate's, or one without a preview)
            photo = self.source.images / f"{image_id}.jpg" if self.source.images else None
            if photo is not None and photo.is_file():
                self._make(image_id, Image.open(photo))
        for _, path in _shards(self.source.release, rms.PAIRS):  # a bare release: its photos, a row group at a time
            if not missing - self.links.keys():
                break
            for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=["image_id", "image"]):
                for image_id, image in zip(batch.column("image_id").to_pylist(), batch.column("image").to_pylist()):
                    if image_id in missing and image_id not in self.links and image and image.get("bytes"):
                        self._make(image_id, Image.open(io.BytesIO(image["bytes"])))

    def _make(self, image_id: str, image: Image.Image) -> None:
        """`thumbnail_jpeg` of the photo, decoded at 1/2, 1/4 or 1/8 scale where that still covers it."""
        scale = THUMBNAIL_SIDE / max(image.size)
        if scale < 1:
            image.draft(None, (max(1, int(image.size[0] * scale)), max(1, int(image.size[1] * scale))))
        target = self.own / f"{image_id}.jpg"
        target.write_bytes(thumbnail_jpeg(image.convert("RGB")))
        self.links[image_id] = target

    def img(self, image_id: str, page: Path) -> str:
        if image_id not in self.links:
            return ""
        link = os.path.relpath(self.links[image_id], page.parent).replace(os.sep, "/")
        return f"<img alt='{html.escape(image_id)}' loading='lazy' src='{html.escape(link)}'>"


def _verdicts(verification: dict) -> str:
    e = html.escape
    scores = verification.get("scores") or {}
    spans = []
    for check in rms.CHECKS:
        verdict = str(verification.get(check, ""))
        score = scores.get(check)
        measured = f" ({score:+.2f})" if isinstance(score, (int, float)) else ""
        spans.append(f"<span class='{e(verdict)}'>{check}: {e(verdict)}{measured}</span>")
    margin = verification.get("margin")
    how = f"{verification.get('mode') or '?'}" + (f", margin {margin}" if margin is not None else "")
    return "".join(spans) + f" <small>verifier: {e(str(verification.get('verifier', '')))} ({e(how)})</small>"


def _pair_html(row: dict, responses: dict, thumbnail: str) -> str:
    e = html.escape
    return (f"<article class='pair' data-category='{e(row['risk_category'])}' data-id='{e(row['id'])}'>{thumbnail}<div>"
            f"<div class='query'>{e(row['text'])}</div>"
            f"<div class='twin'>Safe twin: {e(row['safe_twin_text'])}</div>"
            f"<div class='risk'>Risk: <b>{e(row['risk_category'])}</b> / {e(row['risk_subcategory'])}: {e(row['risk_rationale'])}</div>"
            f"<div class='scene'>Scene: {e(row['scene'])}</div>"
            f"<div class='verdicts'>{_verdicts(row['verification'])}</div>"
            f"<div class='response safe'><b>Safe response:</b> {e(responses.get((row['id'], rms.SAFE), '(missing)'))}</div>"
            f"<div class='response unsafe'><b>Unsafe response:</b> {e(responses.get((row['id'], rms.UNSAFE), '(missing)'))}</div>"
            f"<small>{e(row['split'])} · {e(row['image_license'])} · {e(row['image_source'])} · generator {e(row['generator'])}</small>"
            "</div></article>")


def _candidate_html(reject: dict, thumbnail: str) -> str:
    e = html.escape
    details = reject["details"]
    risk = details.get("risk") or {}
    written = "".join(f"<div class='response {e(label)}'><b>{e(label.capitalize())} response:</b> {e(text)}</div>"
                      for label, text in sorted((details.get("responses") or {}).items()))
    return (f"<article class='candidate' data-stage='{e(str(reject.get('stage', '')))}'>{thumbnail}<div>"
            f"<div class='query'>{e(details.get('text') or '(no query was written)')}</div>"
            + (f"<div class='twin'>Safe twin: {e(details['safe_twin_text'])}</div>" if details.get("safe_twin_text") else "")
            + f"<div class='risk'>Risk: <b>{e(str(risk.get('category', '')))}</b>: {e(str(risk.get('rationale', '')))}</div>"
            f"{written}<div class='rejected'><b>Rejected at {e(str(reject.get('stage', '')))}</b> "
            f"({e(str(details.get('cause', '')))}, {details.get('attempts', 0)} attempt(s)): {e(str(reject.get('reason', '')))}</div>"
            "</div></article>")


def _reject_html(reject: dict) -> str:
    e = html.escape
    cause = (reject.get("details") or {}).get("cause", "")
    return (f"<tr class='reject'><td>{e(str(reject.get('kind', '')))}</td><td>{e(str(reject.get('stage', '')))}</td>"
            f"<td>{e(str(cause))}</td><td>{e(str(reject.get('item', '')))}</td><td>{e(str(reject.get('reason', '')))}</td></tr>")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-") or "x"


@dataclass
class View:
    """One listing (all pairs, one category's pairs, candidates of one stage, the rejects), paged."""

    kind: str  # "pairs" | "candidates" | "rejects"
    name: str  # "all" or the category / stage
    items: list

    def pages(self) -> int:
        return max(1, -(-len(self.items) // PAGE_SIZE))

    def page(self, number: int) -> list:
        return self.items[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]


class GalleryWriter:
    def __init__(self, source: GallerySource, out: Path):
        self.source, self.out = source, out
        self.folder = out.with_suffix("")  # gallery.html -> gallery/
        self.pairs = _pairs(source.release)
        self.responses = _responses(source.release)
        self.rejects = [json.loads(line) for line in _lines(source.rejects)]
        self.candidates = [r for r in self.rejects if r.get("kind") == "pair"]
        self.categories = Counter(row["risk_category"] for row in self.pairs)
        by_category, by_stage = _grouped(self.pairs, lambda r: r["risk_category"]), _grouped(self.candidates, _stage)
        self.views = ([View("pairs", "all", self.pairs)]
                      + [View("pairs", name, rows) for name, rows in sorted(by_category.items())]
                      + [View("candidates", "all", self.candidates)]
                      + [View("candidates", name, rows) for name, rows in sorted(by_stage.items())]
                      + [View("rejects", "all", self.rejects)])
        self.thumbnails = Thumbnails(source, self.folder / "thumbnails")

    def path(self, view: View, number: int = 1) -> Path:
        if view.kind == "pairs" and view.name == "all" and number == 1:
            return self.out
        return self.folder / f"{view.kind}-{_slug(view.name)}-{number:04d}.html"

    def write(self) -> Path:
        if self.folder.is_dir():  # pages of an earlier gallery (thumbnails made from photos are kept)
            for old in self.folder.glob("*.html"):
                old.unlink()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.thumbnails.prepare({row["image_id"] for row in self.pairs} | {r["image_id"] for r in self.candidates})
        for view in self.views:
            for number in range(1, view.pages() + 1):
                page = self.path(view, number)
                page.write_text(self._page(view, number, page), encoding="utf-8")
        return self.out

    def _link(self, page: Path, target: Path) -> str:
        return html.escape(os.path.relpath(target, page.parent).replace(os.sep, "/"))

    def _page(self, view: View, number: int, page: Path) -> str:
        e = html.escape
        title = Path(self.source.title).name
        out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>RMS gallery: {e(title)}</title>",
               f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
               f"<h1>RMS gallery: {e(self.source.title)}</h1>",
               f"<p id='summary'><span id='pair-count'>{len(self.pairs)}</span> pairs in {len(self.categories)} categories; "
               f"<span id='candidate-count'>{len(self.candidates)}</span> rejected candidates; "
               f"<span id='reject-count'>{len(self.rejects)}</span> rejects. "
               f"Showing {e(view.kind)} ({e(view.name)}): <span id='shown-count'>{len(view.page(number))}</span> "
               f"of {len(view.items)}, page {number} of {view.pages()}.</p>"]
        if self.source.release is None:
            out.append("<p id='no-release'><b>No pair was kept, so no release was written.</b> The rejected candidates "
                       "and every reject are below.</p>")
        out.append(self._selectors(view, page))
        if self.source.release and (self.source.release / "taxonomy.png").exists() and page == self.out:
            out.append(f"<details><summary>Taxonomy chart</summary><img id='taxonomy-chart' "
                       f"src='{self._link(page, self.source.release / 'taxonomy.png')}'></details>")
        shown = [(view, number)]
        if page == self.out:  # the first page also shows the first candidates and rejects
            shown += [(self.views_of("candidates")[0], 1), (self.views_of("rejects")[0], 1)]
        for section_view, section_number in shown:
            out.append(self._section(section_view, section_number, page))
        out.append("</body></html>")
        return "\n".join(out)

    def views_of(self, kind: str) -> list[View]:
        return [view for view in self.views if view.kind == kind]

    def _selectors(self, current: View, page: Path) -> str:
        e = html.escape
        parts = ["<label>Risk category: <select id='category-filter'>"]
        for view in self.views_of("pairs"):
            selected = " selected" if view is current else ""
            label = f"{view.name} ({len(view.items)})" if view.name != "all" else "all"
            parts.append(f"<option value='{self._link(page, self.path(view))}' data-name='{e(view.name)}'{selected}>{e(label)}</option>")
        parts.append("</select></label> <label>Rejected candidates by stage: <select id='stage-filter'>")
        for view in self.views_of("candidates"):
            selected = " selected" if view is current else ""
            parts.append(f"<option value='{self._link(page, self.path(view))}' data-name='{e(view.name)}'{selected}>"
                         f"{e(view.name)} ({len(view.items)})</option>")
        rejects = self.views_of("rejects")[0]
        parts.append(f"</select></label> <a href='{self._link(page, self.path(rejects))}'>every reject ({len(rejects.items)})</a>")
        return "".join(parts)

    def _nav(self, view: View, number: int, page: Path) -> str:
        if view.pages() == 1:
            return ""
        links = []
        if number > 1:
            links.append(f"<a class='prev' href='{self._link(page, self.path(view, number - 1))}'>previous</a>")
        links.append(f"page {number} of {view.pages()}")
        if number < view.pages():
            links.append(f"<a class='next' href='{self._link(page, self.path(view, number + 1))}'>next</a>")
        return f"<nav class='pages'>{' '.join(links)}</nav>"

    def _section(self, view: View, number: int, page: Path) -> str:
        items = view.page(number)
        nav = self._nav(view, number, page)
        if view.kind == "pairs":
            body = "".join(_pair_html(row, self.responses, self.thumbnails.img(row["image_id"], page)) for row in items)
            return f"<section id='pairs'>{nav}{body}{nav}</section>"
        if view.kind == "candidates":
            body = "".join(_candidate_html(r, self.thumbnails.img(r["image_id"], page)) for r in items)
            return f"<h2>Rejected candidates</h2><section id='candidates'>{nav}{body}{nav}</section>"
        rows = "".join(_reject_html(r) for r in items)
        return (f"<h2>Rejects</h2>{nav}<table id='rejects'><tr><th>kind</th><th>stage</th><th>cause</th><th>item</th>"
                f"<th>reason</th></tr>{rows}</table>{nav}")


def _stage(reject: dict) -> str:
    return str(reject.get("stage", ""))


def _grouped(items: list[dict], key) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _lines(path: Path | None) -> Iterator[str]:
    if path is None or not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def write_gallery(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the gallery of a run or release directory (default: its `gallery.html`, pages in `gallery/`).
    For a run, skipped when the release (or the rejects file) it shows and this code are what the gallery
    already there was written from."""
    source = resolve_source(path)
    target = Path(out) if out else source.default_out
    if source.steps is None:
        return GalleryWriter(source, target).write()
    shown = [p for p in (source.release, source.rejects) if p is not None and p.exists()]
    stamp = Stamp(source.steps, "gallery", fp.digest({"shown": listing(shown), "out": str(target.resolve()),
                                                       "code": fp.modules_digest(__name__)}))
    if stamp.result() is None:
        GalleryWriter(source, target).write()
        stamp.record({"gallery": str(target)}, [target, target.with_suffix("")])
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", metavar="RUN_OR_RELEASE", help="a run directory (with or without a release) or a release directory")
    parser.add_argument("--out", default=None, help="HTML file to write (default: RUN/gallery.html or RELEASE/gallery.html; "
                                                    "its other pages go to the folder of the same name)")


def main(args: argparse.Namespace) -> int:
    try:
        with locked(args.release, option="RUN_OR_RELEASE"):  # a run writing there now: wait for it, then render
            out = write_gallery(args.release, args.out)
    except (FileNotFoundError, ConfigError) as error:  # DirectoryBusy included
        print(f"error: {error}", file=sys.stderr)
        return 2
    pages = sum(1 for _ in out.with_suffix("").glob("*.html")) + 1
    print(f"wrote {out} ({pages} page{'s' if pages > 1 else ''}, {out.stat().st_size // 1024} KiB first page)")
    return 0
