"""Steps 8-9: join shard outputs (and an optional base release) into one release.

Cross-shard image dedup (exact id / dHash), taxonomy built from every proposed label, canonical categories,
query dedup across the whole release (base release rows win), per-category cap, split by image, then
`write_release` (shards, card, taxonomy.json + taxonomy.png, pipeline_config.yaml, rejects.jsonl) and
`validate_release`. Accounting invariant: every input image is either in the release or has an image-level
reject (images whose candidate pairs were all rejected get one naming the stages).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rms_dataset as rms
from atomic_files import write_atomic
from generation.outputs import rejects_path
from generation.release import write_release
from generation.validate import validate_release
from typed_config import ConfigError

from .chart import taxonomy_chart
from .config import RunConfig
from .dedup import find_duplicates
from .executor import check_shard_file, read_shard_summary
from .ingest import dhash, hamming
from .pipeline import funnel_rows
from .records import CAP, DEDUP, INGEST, ImageRecord, Reject
from .store import read_jsonl
from .taxonomy import Taxonomy, normalise_label


FINAL_ROW = "dedup+cap"  # the funnel's last row: query dedup and the category cap, over the whole release


@dataclass
class ShardData:
    root: Path  # the run directory (holds images/ and shard/)
    images: list[ImageRecord]
    pairs: list[dict[str, Any]]
    rejects: list[Reject]
    summary: dict[str, Any]


def read_shard(run_dir: str | Path) -> ShardData:
    root = Path(run_dir)
    shard = root / "shard"
    if not (shard / "summary.json").exists():
        raise FileNotFoundError(f"{root}: no shard/summary.json; is this the --out of a finished `python -m generation run`?"
                                " (rerun it: finished steps are resumed from the checkpoints)")

    summary = read_shard_summary(shard / "summary.json")

    def jsonl(name):
        check_shard_file(shard / name, summary)
        return read_jsonl(shard / name, "rerun the shard")

    return ShardData(root, [ImageRecord.from_json(r) for r in jsonl("images.jsonl")], jsonl("pairs.jsonl"),
                     [Reject.from_json(r) for r in jsonl("rejects.jsonl")], summary)


@dataclass
class BaseRelease:
    rows: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # config -> split -> rows
    hashes: list[tuple[str, int]] = field(default_factory=list)  # (image_id, dhash)

    @property
    def pairs(self) -> list[dict]:
        return [row for rows in self.rows.get(rms.PAIRS, {}).values() for row in rows]


def load_base_release(path_or_repo: str | None) -> BaseRelease:
    """A previous release (local dir or Hub dataset repo id) whose rows the new version keeps."""
    if not path_or_repo:
        return BaseRelease()
    import pyarrow.parquet as pq
    from PIL import Image

    root = Path(path_or_repo)
    if not root.is_dir():
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(repo_id=path_or_repo, repo_type="dataset"))
    problems = validate_release(str(root))
    if problems:
        raise ConfigError(f"--base-release {path_or_repo}: not a release that validates (" + "; ".join(str(p) for p in problems[:3])
                          + "); give a release directory written by `run` or `merge`, or a Hub dataset id")
    base = BaseRelease()
    seen = set()
    for config in rms.SOURCE_CONFIGS:
        for split, paths in rms.find_shards(str(root), config).items():
            for path in paths:
                base.rows.setdefault(config, {}).setdefault(split, []).extend(pq.read_table(path).to_pylist())
    for row in base.pairs:
        if row["image_id"] not in seen:
            seen.add(row["image_id"])
            base.hashes.append((row["image_id"], dhash(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))))
    return base


def finalize(shards: list[ShardData], release_dir: str | Path, config: RunConfig, *, base: BaseRelease | None = None,
             overwrite: bool = True) -> tuple[Path | None, dict[str, Any]]:
    """Write the release; return (path, report) where the report holds the funnel and the problems found.
    With no pair at all no release can be written (a config needs a row): path is None and every reject is
    written to `<release_dir>-rejects.jsonl` instead (named in the report)."""
    base = base or BaseRelease()
    rejects: list[Reject] = [r for shard in shards for r in shard.rejects]
    image_dir: dict[str, Path] = {}
    records: dict[str, ImageRecord] = {}

    # Cross-shard image dedup (within a shard, ingest already did it).
    kept_hashes = [(h, f"{image_id} in the base release") for image_id, h in base.hashes]
    base_ids = {image_id for image_id, _ in base.hashes}
    dropped_images = set()
    for shard in shards:
        for record in sorted(shard.images, key=lambda r: r.image_id):
            fingerprint = int(record.dhash, 16)
            owner = ("the base release" if record.image_id in base_ids else
                     records[record.image_id].filename if record.image_id in records else None)
            if owner is None:
                limit = config.ingest_options().near_duplicate_distance
                owner = next((o for h, o in kept_hashes if hamming(h, fingerprint) <= limit and o != record.filename), None)
            if owner is not None:
                dropped_images.add((str(shard.root), record.image_id))
                rejects.append(Reject("image", INGEST, f"duplicate of {owner} (found when merging)", record.filename, record.image_id,
                                      {"cause": "duplicate"}))
                continue
            records[record.image_id] = record
            image_dir[record.image_id] = shard.root / "images"
            kept_hashes.append((fingerprint, record.filename))

    new_pairs = sorted((p for shard in shards for p in shard.pairs
                        if (str(shard.root), p["image_id"]) not in dropped_images), key=lambda p: (p["image_id"], p["key"]))

    # Taxonomy from every label proposed for a kept pair, plus the base release's categories.
    taxonomy = Taxonomy.build([p["risk"]["category"] for p in new_pairs] + [r["risk_category"] for r in base.pairs])

    # Query dedup over the whole release: base rows first, then new pairs in a fixed order.
    duplicates = find_duplicates([(f"base:{r['id']}", r["text"]) for r in sorted(base.pairs, key=lambda r: r["id"])]
                                 + [(p["key"], p["text"]) for p in new_pairs], config.dedup_threshold)
    category_counts = Counter(taxonomy.canonical(r["risk_category"]) for r in base.pairs)
    released = []
    for pair in new_pairs:
        category = taxonomy.canonical(pair["risk"]["category"])
        if pair["key"] in duplicates:
            rejects.append(_pair_reject(DEDUP, pair, records, f"near-duplicate query of {duplicates[pair['key']]}"))
        elif config.category_cap is not None and category_counts[category] >= config.category_cap:
            rejects.append(_pair_reject(CAP, pair, records, f"category {category} is at its cap ({config.category_cap})"))
        else:
            category_counts[category] += 1
            released.append((pair, category))

    # Accounting: an image with no released pair and no image-level reject gets one.
    released_images = {pair["image_id"] for pair, _ in released}
    rejected_images = {(r.item, r.image_id) for r in rejects if r.kind == "image"}
    for image_id, record in sorted(records.items()):
        if image_id not in released_images and (record.filename, image_id) not in rejected_images:
            stages = sorted({r.stage for r in rejects if r.kind == "pair" and r.image_id == image_id})
            rejects.append(Reject("image", "pairs", f"no pair of this image was kept (pairs rejected at: {', '.join(stages) or 'none proposed'})",
                                  record.filename, image_id, {"cause": "no pair kept"}))

    rows = _rows(released, records, image_dir, config, base)
    pair_counts = Counter(row["risk_category"] for split_rows in rows[rms.PAIRS].values() for row in split_rows)
    taxonomy_json = taxonomy.to_json(dict(pair_counts))
    prompts = {name: used for shard in shards for name, used in sorted(shard.summary.get("prompts", {}).items())}
    pipeline_config = {"run": config.to_dict(), "pipeline_version": rms.PIPELINE_VERSION,
                       "prompts": prompts,  # the templates the steps really used (version + sha256 of the text)
                       # per shard: the checkpoints used and what each role's backend served
                       "shards": [{"shard": shard.summary.get("shard"), "fingerprints": shard.summary.get("fingerprints", {}),
                                   "models": shard.summary.get("models", {})}
                                  for shard in shards],
                       "base_release": bool(base.rows)}
    funnel = _funnel(shards, len(new_pairs), len(released))
    report = {"release": None, "pairs": sum(len(v) for v in rows[rms.PAIRS].values()), "new_pairs": len(released),
              "images_in": funnel["ingest"][0], "images_released": len(released_images),
              "images_rejected": sum(1 for r in rejects if r.kind == "image"), "funnel": funnel,
              "causes": reject_causes(rejects), "problems": [], "categories": dict(pair_counts)}
    ordered_rejects = [r.to_json() for r in sorted(rejects, key=_reject_order)]
    if report["pairs"] == 0:
        # A release needs at least one row per config: write no release, but keep every reject with its reason.
        path = rejects_path(Path(release_dir))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered_rejects))
        report["rejects_file"] = str(path)
        return None, report
    path = write_release(release_dir, rows, taxonomy=taxonomy_json, pipeline_config=pipeline_config,
                         rejects=ordered_rejects, pretty_name=config.pretty_name, version=config.version,
                         extra_files={"taxonomy.png": taxonomy_chart(dict(pair_counts))}, overwrite=overwrite)
    report["release"] = str(path)
    report["problems"] = [str(p) for p in validate_release(str(path))]
    return path, report


def _reject_order(reject: Reject):
    return (reject.kind, reject.image_id, reject.item, reject.stage)


def _pair_reject(stage: str, pair: dict, records: dict[str, ImageRecord], reason: str) -> Reject:
    record = records.get(pair["image_id"])
    return Reject("pair", stage, reason, pair["key"], pair["image_id"],
                  {"cause": stage, "risk": pair["risk"], "text": pair["text"], "safe_twin_text": pair["safe_twin_text"],
                   "responses": {"safe": pair["safe_response"], "unsafe": pair["unsafe_response"]},
                   "image_file": record.filename if record else ""})


def _rows(released, records, image_dir, config: RunConfig, base: BaseRelease) -> dict[str, dict[str, list[dict]]]:
    rows: dict[str, dict[str, list[dict]]] = {c: {s: [] for s in config.splits} for c in rms.SOURCE_CONFIGS}
    for config_name, splits in base.rows.items():
        for split, split_rows in splits.items():
            rows[config_name].setdefault(split, []).extend(split_rows)
    for pair, category in released:
        record = records[pair["image_id"]]
        image = {"bytes": _photo_bytes(image_dir[pair["image_id"]], record.image_id), "path": f"{record.image_id}.jpg"}
        split = rms.split_for_image(record.image_id, config.splits)
        risk = pair["risk"]
        rows[rms.PAIRS][split].append({
            "id": pair["pair_id"], "image": image, "image_id": record.image_id, "image_source": record.source,
            "image_license": record.license, "image_attribution": record.attribution, "scene": pair["scene"],
            "text": pair["text"], "risk_category": category,
            "risk_subcategory": normalise_label(risk.get("subcategory") or risk["category"]),
            "risk_rationale": risk.get("rationale", ""), "safe_twin_text": pair["safe_twin_text"],
            "verification": pair["verification"],
            "generator": pair["generator"], "pipeline_version": rms.PIPELINE_VERSION,
        })
        for config_name, label, text in ((rms.SAFE_RESPONSES, rms.SAFE, pair["safe_response"]),
                                         (rms.UNSAFE_RESPONSES, rms.UNSAFE, pair["unsafe_response"])):
            rows[config_name][split].append({
                "id": rms.response_id_for(pair["pair_id"], label, text), "pair_id": pair["pair_id"], "image": image,
                "image_id": record.image_id, "text": pair["text"], "risk_category": category, "response": text,
                "label": label, "generator": pair["generator"],
            })
    return rows


def _photo_bytes(images: Path, image_id: str) -> bytes:
    """A shard's normalised photo, checked against its id (the hash of its bytes): ingest does not fsync
    each photo, so a power failure can damage one; it must never reach a release."""
    path = images / f"{image_id}.jpg"
    data = path.read_bytes()
    if rms.image_id_for(data) != image_id:
        raise ValueError(f"{path}: its bytes do not match its id {image_id} (damaged, e.g. by a power failure); rerun "
                         "that shard's `python -m generation run` (it ingests damaged photos again), then merge")
    return data


def _funnel(shards: list[ShardData], before_dedup: int, released: int) -> dict[str, list[int]]:
    funnel: dict[str, list[int]] = {}
    for shard in shards:
        for stage, (entered, passed) in shard.summary.get("funnel", {}).items():
            current = funnel.setdefault(stage, [0, 0])
            current[0] += entered
            current[1] += passed
    funnel[FINAL_ROW] = [before_dedup, released]
    return funnel


def reject_causes(rejects: list[Reject]) -> dict[str, dict[str, int]]:
    """stage -> cause -> how many rejects (a gate's refusals are `gate:<name>`)."""
    causes: dict[str, Counter] = {}
    for reject in rejects:
        causes.setdefault(reject.stage, Counter())[reject.details.get("cause") or reject.stage] += 1
    return {stage: dict(sorted(counts.items())) for stage, counts in sorted(causes.items())}


def format_funnel(report: dict[str, Any]) -> str:
    lines = [f"{'step':<14} {'in':>6} {'kept':>6} {'rate':>7}"]
    order = {row: index for index, row in enumerate((*funnel_rows(), FINAL_ROW))}
    for stage, (entered, passed) in sorted(report["funnel"].items(), key=lambda kv: order.get(kv[0], 99)):
        rate = f"{100 * passed / entered:.0f}%" if entered else "-"
        lines.append(f"{stage:<14} {entered:>6} {passed:>6} {rate:>7}")
    if report.get("causes"):
        lines.append("rejects by stage and cause:")
        for stage, counts in report["causes"].items():
            lines.append(f"  {stage:<12} " + ", ".join(f"{cause} {count}" for cause, count in counts.items()))
    return "\n".join(lines)
