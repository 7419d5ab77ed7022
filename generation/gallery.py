"""Render a self-contained HTML gallery of a release (or a run directory's release): thumbnails embedded,
query, safe twin, risk, verdicts, both responses, a category filter, and every reject with its reason.

  python -m generation gallery runs/sample            # writes runs/sample/release/gallery.html
  python -m generation gallery sample_release --out /tmp/sample.html
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

import rms_dataset as rms

THUMBNAIL_SIDE = 256

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
.pair{display:flex;gap:1em;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em;margin:1em 0}
.pair img{width:256px;max-height:256px;object-fit:contain;border-radius:4px;flex:none}
.query{font-size:1.1em;font-weight:600}.twin{color:#2a7a2a}.risk{color:#a33}
.verdicts span{display:inline-block;margin-right:.6em;padding:0 .4em;border-radius:4px;background:#eee}
.verdicts .unsafe{background:#f6d5d5}.verdicts .safe{background:#d5f0d5}
.response{white-space:pre-wrap;border-left:3px solid #ccc;padding-left:.6em;margin:.3em 0}
.response.safe{border-color:#3a3}.response.unsafe{border-color:#c33}
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


def resolve_release(path: str | Path) -> Path:
    path = Path(path)
    if (path / rms.CARD_FILE).exists():
        return path
    if (path / "release" / rms.CARD_FILE).exists():
        return path / "release"
    raise FileNotFoundError(f"{path}: neither a release (README.md + shards) nor a run directory with release/")


def _thumbnail(image_bytes: bytes) -> str:
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rows(root: Path, config: str) -> list[dict]:
    rows = []
    for split, paths in sorted(rms.find_shards(str(root), config).items()):
        for path in paths:
            rows.extend({**row, "split": split} for row in pq.read_table(path).to_pylist())
    return rows


def render_gallery(release: str | Path) -> str:
    root = resolve_release(release)
    pairs = sorted(_rows(root, rms.PAIRS), key=lambda row: (row["risk_category"], row["id"]))
    responses = {(row["pair_id"], row["label"]): row["response"]
                 for config in (rms.SAFE_RESPONSES, rms.UNSAFE_RESPONSES) for row in _rows(root, config)}
    rejects_path = root / "rejects.jsonl"
    rejects = [json.loads(line) for line in rejects_path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if rejects_path.exists() else []
    categories = Counter(row["risk_category"] for row in pairs)
    e = html.escape
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>RMS gallery: {e(root.name)}</title>",
           f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
           f"<h1>RMS gallery: {e(str(root))}</h1>",
           f"<p id='summary'><span id='pair-count'>{len(pairs)}</span> pairs in {len(categories)} categories; "
           f"<span id='reject-count'>{len(rejects)}</span> rejects. Showing <span id='shown-count'>{len(pairs)}</span>.</p>",
           "<label>Risk category: <select id='category-filter'><option value='all'>all</option>"]
    out += [f"<option value='{e(name)}'>{e(name)} ({count})</option>" for name, count in sorted(categories.items())]
    out.append("</select></label>")
    if (root / "taxonomy.png").exists():
        chart = base64.b64encode((root / "taxonomy.png").read_bytes()).decode("ascii")
        out.append(f"<details><summary>Taxonomy chart</summary><img id='taxonomy-chart' src='data:image/png;base64,{chart}'></details>")
    out.append("<section id='pairs'>")
    for row in pairs:
        verification = row["verification"] or {}
        verdicts = "".join(f"<span class='{e(str(verification.get(k, '')))}'>{k}: {e(str(verification.get(k, '')))}</span>"
                           for k in ("text_alone", "image_alone", "pair", "safe_twin"))
        out.append(
            f"<article class='pair' data-category='{e(row['risk_category'])}' data-id='{e(row['id'])}'>"
            f"<img alt='{e(row['image_id'])}' src='{_thumbnail(row['image']['bytes'])}'><div>"
            f"<div class='query'>{e(row['text'])}</div>"
            f"<div class='twin'>Safe twin: {e(row['safe_twin_text'])}</div>"
            f"<div class='risk'>Risk: <b>{e(row['risk_category'])}</b> / {e(row['risk_subcategory'])}: {e(row['risk_rationale'])}</div>"
            f"<div class='scene'>Scene: {e(row['scene'])}</div>"
            f"<div class='verdicts'>{verdicts} <small>verifier: {e(str(verification.get('verifier', '')))}</small></div>"
            f"<div class='response safe'><b>Safe response:</b> {e(responses.get((row['id'], rms.SAFE), '(missing)'))}</div>"
            f"<div class='response unsafe'><b>Unsafe response:</b> {e(responses.get((row['id'], rms.UNSAFE), '(missing)'))}</div>"
            f"<small>{e(row['split'])} · {e(row['image_license'])} · {e(row['image_source'])} · generator {e(row['generator'])}</small>"
            "</div></article>")
    out.append("</section><h2>Rejects</h2><table id='rejects'><tr><th>kind</th><th>stage</th><th>item</th><th>reason</th></tr>")
    for reject in rejects:
        out.append(f"<tr class='reject'><td>{e(str(reject.get('kind', '')))}</td><td>{e(str(reject.get('stage', '')))}</td>"
                   f"<td>{e(str(reject.get('item', '')))}</td><td>{e(str(reject.get('reason', '')))}</td></tr>")
    out.append("</table></body></html>")
    return "\n".join(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", metavar="RUN_OR_RELEASE", help="a release directory or a run directory (uses its release/)")
    parser.add_argument("--out", default=None, help="HTML file to write (default: <release>/gallery.html)")


def main(args: argparse.Namespace) -> int:
    try:
        root = resolve_release(args.release)
        page = render_gallery(root)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else root / "gallery.html"
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page) // 1024} KiB)")
    return 0
