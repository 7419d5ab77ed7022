"""Render a self-contained HTML gallery of a run or a release: the released pairs (thumbnails embedded,
query, safe twin, risk, verdicts with the measured scores, both responses, a category filter), the
rejected candidates (what the model wrote and why it was refused) and every reject with its reason.

  python -m generation gallery runs/sample            # writes runs/sample/gallery.html (a run dir, with or without a release)
  python -m generation gallery sample_release --out /tmp/sample.html

`python -m generation run` writes RUN/gallery.html itself, also when no pair was kept.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

import rms_dataset as rms
from generation.steps.ingest import THUMBNAIL_SIDE, thumbnail_jpeg


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
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
"""

_SCRIPT = """
function applyFilter(){var v=document.getElementById('category-filter').value;var shown=0;
document.querySelectorAll('.pair').forEach(function(e){var on=(v==='all'||e.dataset.category===v);
e.style.display=on?'':'none';if(on)shown++;});document.getElementById('shown-count').textContent=shown;}
document.addEventListener('DOMContentLoaded',function(){
document.getElementById('category-filter').addEventListener('change',applyFilter);
var p=new URLSearchParams(location.search).get('category');if(p){document.getElementById('category-filter').value=p;}
applyFilter();});
"""


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


def resolve_source(path: str | Path) -> GallerySource:
    path = Path(path)
    if (path / rms.CARD_FILE).exists():
        return GallerySource(str(path), path, path / "rejects.jsonl", None, path / "gallery.html")
    if (path / "shard").is_dir() or (path / "release" / rms.CARD_FILE).exists():
        release = path / "release" if (path / "release" / rms.CARD_FILE).exists() else None
        rejects = release / "rejects.jsonl" if release else path / "release-rejects.jsonl"
        return GallerySource(str(path), release, rejects, path / "images", path / "gallery.html", path / "thumbnails")
    raise FileNotFoundError(f"{path}: neither a release (README.md + shards) nor a run directory (shard/, release/)")


def _data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _thumbnail(image_bytes: bytes) -> str:
    """A data URL of `thumbnail_jpeg` of the image, decoded at 1/2, 1/4 or 1/8 scale where that still covers
    the thumbnail (a JPEG decodes several times faster so)."""
    image = Image.open(io.BytesIO(image_bytes))
    scale = THUMBNAIL_SIDE / max(image.size)
    if scale < 1:
        image.draft(None, (max(1, int(image.size[0] * scale)), max(1, int(image.size[1] * scale))))
    return _data_url(thumbnail_jpeg(image.convert("RGB")))


def _thumbnails(photos: dict[str, bytes | Path], made: Path | None) -> dict[str, str]:
    """image_id -> thumbnail (a data URL) for every photo (id -> its bytes or its file): the one ingest
    made (`made`/<image_id>.jpg; the id is the hash of the photo, so it shows that photo), else the photo
    decoded once however many pairs and candidates show it, in a few threads (PIL releases the GIL)."""
    def one(item):
        image_id, photo = item
        ready = made / f"{image_id}.jpg" if made is not None else None
        if ready is not None and ready.is_file():
            return image_id, _data_url(ready.read_bytes())
        return image_id, _thumbnail(photo if isinstance(photo, bytes) else photo.read_bytes())

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(pool.map(one, sorted(photos.items())))


def _rows(root: Path | None, config: str) -> list[dict]:
    rows = []
    for split, paths in sorted(rms.find_shards(str(root), config).items()) if root else ():
        for path in paths:
            rows.extend({**row, "split": split} for row in pq.read_table(path).to_pylist())
    return rows


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


def render_gallery(path: str | Path) -> str:
    source = resolve_source(path)
    pairs = sorted(_rows(source.release, rms.PAIRS), key=lambda row: (row["risk_category"], row["id"]))
    responses = {(row["pair_id"], row["label"]): row["response"]
                 for config in (rms.SAFE_RESPONSES, rms.UNSAFE_RESPONSES) for row in _rows(source.release, config)}
    rejects = [json.loads(line) for line in source.rejects.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if source.rejects and source.rejects.exists() else []
    candidates = [r for r in rejects if r.get("kind") == "pair"]
    categories = Counter(row["risk_category"] for row in pairs)
    photos: dict[str, bytes | Path] = {}
    for reject in candidates:
        image = source.images / f"{reject['image_id']}.jpg" if source.images else None
        if image is not None and image.exists():
            photos[reject["image_id"]] = image
    for row in pairs:  # the released bytes win over the run's file of the same id
        photos[row["image_id"]] = row["image"]["bytes"]
    thumbnails = _thumbnails(photos, source.thumbnails)
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>RMS gallery: {e(Path(source.title).name)}</title>",
           f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
           f"<h1>RMS gallery: {e(source.title)}</h1>",
           f"<p id='summary'><span id='pair-count'>{len(pairs)}</span> pairs in {len(categories)} categories; "
           f"<span id='candidate-count'>{len(candidates)}</span> rejected candidates; "
           f"<span id='reject-count'>{len(rejects)}</span> rejects. Showing <span id='shown-count'>{len(pairs)}</span>.</p>"]
    if source.release is None:
        out.append("<p id='no-release'><b>No pair was kept, so no release was written.</b> The rejected candidates "
                   "and every reject are below.</p>")
    out.append("<label>Risk category: <select id='category-filter'><option value='all'>all</option>")
    out += [f"<option value='{e(name)}'>{e(name)} ({count})</option>" for name, count in sorted(categories.items())]
    out.append("</select></label>")
    if source.release and (source.release / "taxonomy.png").exists():
        chart = base64.b64encode((source.release / "taxonomy.png").read_bytes()).decode("ascii")
        out.append(f"<details><summary>Taxonomy chart</summary><img id='taxonomy-chart' src='data:image/png;base64,{chart}'></details>")
    out.append("<section id='pairs'>")
    for row in pairs:
        out.append(
            f"<article class='pair' data-category='{e(row['risk_category'])}' data-id='{e(row['id'])}'>"
            f"<img alt='{e(row['image_id'])}' src='{thumbnails[row['image_id']]}'><div>"
            f"<div class='query'>{e(row['text'])}</div>"
            f"<div class='twin'>Safe twin: {e(row['safe_twin_text'])}</div>"
            f"<div class='risk'>Risk: <b>{e(row['risk_category'])}</b> / {e(row['risk_subcategory'])}: {e(row['risk_rationale'])}</div>"
            f"<div class='scene'>Scene: {e(row['scene'])}</div>"
            f"<div class='verdicts'>{_verdicts(row['verification'] or {})}</div>"
            f"<div class='response safe'><b>Safe response:</b> {e(responses.get((row['id'], rms.SAFE), '(missing)'))}</div>"
            f"<div class='response unsafe'><b>Unsafe response:</b> {e(responses.get((row['id'], rms.UNSAFE), '(missing)'))}</div>"
            f"<small>{e(row['split'])} · {e(row['image_license'])} · {e(row['image_source'])} · generator {e(row['generator'])}</small>"
            "</div></article>")
    out.append("</section><h2>Rejected candidates</h2><section id='candidates'>")
    for reject in candidates:
        details = reject["details"]
        thumbnail = (f"<img alt='{e(reject['image_id'])}' src='{thumbnails[reject['image_id']]}'>"
                     if reject["image_id"] in thumbnails else "")
        risk = details.get("risk") or {}
        written = "".join(f"<div class='response {e(label)}'><b>{e(label.capitalize())} response:</b> {e(text)}</div>"
                          for label, text in sorted((details.get("responses") or {}).items()))
        out.append(
            f"<article class='candidate' data-stage='{e(str(reject.get('stage', '')))}'>{thumbnail}<div>"
            f"<div class='query'>{e(details.get('text') or '(no query was written)')}</div>"
            + (f"<div class='twin'>Safe twin: {e(details['safe_twin_text'])}</div>" if details.get("safe_twin_text") else "")
            + f"<div class='risk'>Risk: <b>{e(str(risk.get('category', '')))}</b>: {e(str(risk.get('rationale', '')))}</div>"
            f"{written}<div class='rejected'><b>Rejected at {e(str(reject.get('stage', '')))}</b> "
            f"({e(str(details.get('cause', '')))}, {details.get('attempts', 0)} attempt(s)): {e(str(reject.get('reason', '')))}</div>"
            "</div></article>")
    out.append("</section><h2>Rejects</h2><table id='rejects'><tr><th>kind</th><th>stage</th><th>cause</th><th>item</th><th>reason</th></tr>")
    for reject in rejects:
        cause = (reject.get("details") or {}).get("cause", "")
        out.append(f"<tr class='reject'><td>{e(str(reject.get('kind', '')))}</td><td>{e(str(reject.get('stage', '')))}</td>"
                   f"<td>{e(str(cause))}</td><td>{e(str(reject.get('item', '')))}</td><td>{e(str(reject.get('reason', '')))}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def write_gallery(path: str | Path, out: str | Path | None = None) -> Path:
    """Render the gallery of a run or release directory and write it (default: its `gallery.html`)."""
    source = resolve_source(path)
    target = Path(out) if out else source.default_out
    target.write_text(render_gallery(path), encoding="utf-8")
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", metavar="RUN_OR_RELEASE", help="a run directory (with or without a release) or a release directory")
    parser.add_argument("--out", default=None, help="HTML file to write (default: RUN/gallery.html or RELEASE/gallery.html)")


def main(args: argparse.Namespace) -> int:
    try:
        out = write_gallery(args.release, args.out)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0
