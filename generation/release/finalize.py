"""Steps 8-9: join shard outputs (and an optional base release) into one release.

Phases, each a function: `merge_photos` (cross-shard image dedup by exact id / dHash, indexed; shards in the
order of their index), the taxonomy built from every proposed label, `choose_pairs` (query dedup across the
whole release, base release rows first, indexed; per-category cap), `account_images`, `release_rows` (split
by image; photos given by path, never held), then `write_release` (shards, card, taxonomy.json +
taxonomy.png, pipeline_config.yaml, rejects.jsonl) and `validate_release`. Accounting invariant: every input
image is either in the release or has an image-level reject (images whose candidate pairs were all rejected
get one naming the stages). In a run, the whole step is stamped (`stamps.Stamp`): unchanged, it is skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rms_dataset as rms
from atomic_files import write_atomic
from generation.engine import fingerprint as fp
from generation.engine.config import RunConfig
from generation.engine.executor import check_shard_file, read_shard_summary
from generation.engine.outputs import rejects_path
from generation.engine.records import CAP, DEDUP, INGEST, ImageRecord, Reject
from generation.engine.stamps import Stamp
from generation.engine.store import read_jsonl
from generation.release.validate import validate_release
from generation.release.write import write_release
from generation.steps.ingest import dhash
from generation.steps.pipeline import funnel_rows
from typed_config import ConfigError

from .chart import taxonomy_chart
from .dedup import PhotoIndex, find_duplicates
from .taxonomy import Taxonomy, normalise_label


FINAL_ROW = "dedup+cap"  # the funnel's last row: query dedup and the category cap, over the whole release


@dataclass
class ShardData:
    root: Path  # the run directory (holds images/ and shard/)
    images: list[ImageRecord]
    pairs: list[dict[str, Any]]
    rejects: list[Reject]
    summary: dict[str, Any]
    digest: str = ""  # of what finalize reads: the outcome files and the summary's provenance (not its call counts)


# The parts of a shard's summary.json the release is made from (the call counts and usage are not).
SUMMARY_READ = ("shard", "funnel", "config", "prompts", "fingerprints", "models", "normalise_version")


def read_shard(run_dir: str | Path) -> ShardData:
    root = Path(run_dir)
    shard = root / "shard"
    if not (shard / "summary.json").exists():
        raise FileNotFoundError(f"{root}: no shard/summary.json; is this the --out of a finished `python -m generation run`?"
                                " (rerun it: finished steps are resumed from the checkpoints)")

    summary = read_shard_summary(shard / "summary.json")
    digest = hashlib.sha256()

    def jsonl(name):
        check_shard_file(shard / name, summary)
        digest.update((shard / name).read_bytes())
        return read_jsonl(shard / name, "rerun the shard")

    images, pairs, rejects = jsonl("images.jsonl"), jsonl("pairs.jsonl"), jsonl("rejects.jsonl")
    digest.update(fp.digest({key: summary.get(key) for key in SUMMARY_READ}).encode())
    return ShardData(root, [ImageRecord.from_json(r) for r in images], pairs, [Reject.from_json(r) for r in rejects],
                     summary, digest.hexdigest())


@dataclass
class BaseRelease:
    """A previous release's rows (config -> split -> rows) with each photo given by path: `load_base_release`
    reads the parquet shards a row group at a time and writes each photo once into ``photos_dir`` (a
    scratch folder removed with this object), so no photo's bytes are held; the writer reads them back when
    it writes the row group."""

    rows: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # config -> split -> rows
    hashes: list[tuple[str, int]] = field(default_factory=list)  # (image_id, dhash)
    photos_dir: Path | None = None

    @property
    def pairs(self) -> list[dict]:
        return [row for rows in self.rows.get(rms.PAIRS, {}).values() for row in rows]


def load_base_release(path_or_repo: str | None) -> BaseRelease:
    """A previous release (local dir or Hub dataset repo id) whose rows the new version keeps."""
    if not path_or_repo:
        return BaseRelease()
    import shutil
    import tempfile
    import weakref

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
    base = BaseRelease(photos_dir=Path(tempfile.mkdtemp(prefix="rms-base-release-photos-")))
    weakref.finalize(base, shutil.rmtree, base.photos_dir, True)
    hashed = set()
    for config in rms.SOURCE_CONFIGS:  # the writer derives preference again
        for split, paths in rms.find_shards(str(root), config).items():
            kept = base.rows.setdefault(config, {}).setdefault(split, [])
            for path in paths:
                parquet = pq.ParquetFile(path)
                for group in range(parquet.num_row_groups):  # one row group's photos in memory (100 rows)
                    for row in parquet.read_row_group(group).to_pylist():
                        image = row.get("image") or {}
                        if config == rms.PAIRS and image.get("bytes") and row["image_id"] not in hashed:
                            hashed.add(row["image_id"])
                            base.hashes.append((row["image_id"],
                                                dhash(Image.open(io.BytesIO(image["bytes"])).convert("RGB"))))
                        kept.append(_photo_by_path(row, base.photos_dir))
    return base


def _photo_by_path(row: dict, photos_dir: Path) -> dict:
    """``row`` with its photo written once to ``photos_dir/<image_id>/<name>`` and given by that path (the name
    is kept, so the release writer writes the row as it was)."""
    image = row.get("image") or {}
    if not image.get("bytes"):
        return row
    name = os.path.basename(image.get("path") or f"{row['image_id']}.jpg")
    photo = photos_dir / row["image_id"] / name
    if not photo.exists():
        photo.parent.mkdir(exist_ok=True)
        photo.write_bytes(image["bytes"])
    return {**row, "image": {"bytes": None, "path": str(photo)}}


@dataclass
class Selection:
    """What finalize decided: the kept photos (and the folder of each), the pairs released with their
    category, the taxonomy and every reject."""

    records: dict[str, ImageRecord]
    image_dir: dict[str, Path]
    candidates: int  # new pairs that reached dedup (of kept photos)
    released: list[tuple[dict[str, Any], str]]
    taxonomy: Taxonomy
    rejects: list[Reject]


def finalize(shards: list[ShardData], release_dir: str | Path, config: RunConfig, *, base: BaseRelease | None = None,
             overwrite: bool = True, stamps: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Write the release; return (path, report) where the report holds the funnel and the problems found.
    With no pair at all no release can be written (a config needs a row): path is None and every reject is
    written to `<release_dir>-rejects.jsonl` instead (named in the report). The shards are taken in the order
    of their index, whatever order they are given in. With `stamps` (a run's steps/ folder) the step is
    fingerprinted: when the same shard outcome, config, base release and code already wrote this release
    and it is untouched, nothing is redone and the recorded report is returned."""
    base = base or BaseRelease()
    shards = sorted(shards, key=_shard_order)
    if stamps is None:
        return _finalize(shards, Path(release_dir), config, base, overwrite)
    stamp = Stamp(stamps, "finalize", fingerprint(shards, release_dir, config, base))
    report = stamp.result()
    if report is None:
        path, report = _finalize(shards, Path(release_dir), config, base, overwrite)
        stamp.record(report, [path] if path else [Path(report["rejects_file"])])
    return (Path(report["release"]) if report["release"] else None), report


def fingerprint(shards: list[ShardData], release_dir: str | Path, config: RunConfig, base: BaseRelease) -> str:
    """What the release is made from: the shard outcomes, the config, the base release, where it goes and the
    code that selects, writes and validates it."""
    return fp.digest({
        "shards": [shard.digest for shard in shards], "config": config.to_dict(), "release": str(release_dir),
        "base": fp.digest([sorted(base.hashes), sorted(row["id"] for row in base.pairs)]),
        "pipeline_version": rms.PIPELINE_VERSION,
        "code": fp.modules_digest(__name__, "generation.release.dedup", "generation.release.taxonomy",
                                  "generation.release.chart", "generation.release.write", "generation.release.validate",
                                  "generation.release.card", "rms_dataset"),
    })


def _finalize(shards: list[ShardData], release_dir: Path, config: RunConfig, base: BaseRelease,
              overwrite: bool) -> tuple[Path | None, dict[str, Any]]:
    selection = select(shards, config, base)
    rows = release_rows(selection, config, base)
    report = _report(shards, selection, rows)
    ordered_rejects = [r.to_json() for r in sorted(selection.rejects, key=_reject_order)]
    if report["pairs"] == 0:
        # A release needs at least one row per config: write no release, but keep every reject with its reason.
        path = rejects_path(Path(release_dir))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered_rejects))
        report["rejects_file"] = str(path)
        return None, report
    pair_counts = Counter(report["categories"])
    path = write_release(release_dir, rows, taxonomy=selection.taxonomy.to_json(dict(pair_counts)),
                         pipeline_config=_pipeline_config(shards, config, base), rejects=ordered_rejects,
                         pretty_name=config.pretty_name, version=config.version,
                         extra_files={"taxonomy.png": taxonomy_chart(dict(pair_counts))}, overwrite=overwrite)
    report["release"] = str(path)
    report["problems"] = [str(p) for p in validate_release(str(path))]
    return path, report


def _shard_order(shard: ShardData) -> tuple:
    return (tuple(shard.summary.get("shard") or ()), str(shard.root))


def select(shards: list[ShardData], config: RunConfig, base: BaseRelease) -> Selection:
    """The phases that decide: cross-shard photo dedup, taxonomy, query dedup and cap, image accounting."""
    rejects: list[Reject] = [r for shard in shards for r in shard.rejects]
    records, image_dir, dropped = merge_photos(shards, config, base, rejects)
    new_pairs = sorted((p for shard in shards for p in shard.pairs if (str(shard.root), p["image_id"]) not in dropped),
                       key=lambda p: (p["image_id"], p["key"]))
    # Taxonomy from every label proposed for a kept pair, plus the base release's categories.
    taxonomy = Taxonomy.build([p["risk"]["category"] for p in new_pairs] + [r["risk_category"] for r in base.pairs])
    released = choose_pairs(new_pairs, taxonomy, config, base, records, rejects)
    account_images(records, {pair["image_id"] for pair, _ in released}, rejects)
    return Selection(records, image_dir, len(new_pairs), released, taxonomy, rejects)


def merge_photos(shards: list[ShardData], config: RunConfig, base: BaseRelease,
                 rejects: list[Reject]) -> tuple[dict[str, ImageRecord], dict[str, Path], set[tuple[str, str]]]:
    """Cross-shard photo dedup (`cross_shard_duplicates`). Returns the kept records, their image folders and
    the dropped (shard root, image id) pairs."""
    owners = cross_shard_duplicates([shard.images for shard in shards], config.ingest_options().near_duplicate_distance,
                                    base.hashes)
    records: dict[str, ImageRecord] = {}
    image_dir: dict[str, Path] = {}
    dropped: set[tuple[str, str]] = set()
    for position, shard in enumerate(shards):
        for record in sorted(shard.images, key=lambda r: r.image_id):
            owner = owners.get((position, record.image_id))
            if owner is not None:
                dropped.add((str(shard.root), record.image_id))
                rejects.append(Reject("image", INGEST, f"duplicate of {owner} (found when merging)", record.filename,
                                      record.image_id, {"cause": "duplicate"}))
                continue
            records[record.image_id] = record
            image_dir[record.image_id] = shard.root / "images"
    return records, image_dir, dropped


def cross_shard_duplicates(shards: list[list[ImageRecord]], distance: int,
                           known: list[tuple[str, int]] = ()) -> dict[tuple[int, str], str]:
    """The one cross-shard photo decision (merge's, and the plan's before any model call): taking the shards
    in order and each shard's kept photos by id, a photo that is the same as or within `distance` bits of a
    photo kept before, or of `known` (a base release's (image_id, dhash)), is dropped. Returns (shard
    position, image id) -> what it duplicates, for every dropped photo."""
    known_ids = {image_id for image_id, _ in known}
    kept = PhotoIndex(distance, ((h, f"{image_id} in the base release") for image_id, h in known))
    kept_ids: dict[str, str] = {}
    owners: dict[tuple[int, str], str] = {}
    for position, images in enumerate(shards):
        for record in sorted(images, key=lambda r: r.image_id):
            fingerprint = int(record.dhash, 16)
            owner = ("the base release" if record.image_id in known_ids else
                     kept_ids[record.image_id] if record.image_id in kept_ids else
                     kept.first_within(fingerprint, unless=record.filename))
            if owner is not None:
                owners[(position, record.image_id)] = owner
                continue
            kept_ids[record.image_id] = record.filename
            kept.add(fingerprint, record.filename)
    return owners


def choose_pairs(new_pairs: list[dict], taxonomy: Taxonomy, config: RunConfig, base: BaseRelease,
                 records: dict[str, ImageRecord], rejects: list[Reject]) -> list[tuple[dict, str]]:
    """Query dedup over the whole release (base rows first, then new pairs in a fixed order) and the
    per-category cap: the new pairs released, each with its canonical category."""
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
    return released


def account_images(records: dict[str, ImageRecord], released_images: set[str], rejects: list[Reject]) -> None:
    """Accounting invariant: a kept photo with no released pair and no image-level reject gets one, naming
    the stages at which its pairs were rejected."""
    rejected_images = {(r.item, r.image_id) for r in rejects if r.kind == "image"}
    pair_stages: dict[str, set[str]] = {}
    for reject in rejects:
        if reject.kind == "pair":
            pair_stages.setdefault(reject.image_id, set()).add(reject.stage)
    for image_id, record in sorted(records.items()):
        if image_id not in released_images and (record.filename, image_id) not in rejected_images:
            stages = sorted(pair_stages.get(image_id, ()))
            rejects.append(Reject("image", "pairs", f"no pair of this image was kept (pairs rejected at: {', '.join(stages) or 'none proposed'})",
                                  record.filename, image_id, {"cause": "no pair kept"}))


def _pipeline_config(shards: list[ShardData], config: RunConfig, base: BaseRelease) -> dict[str, Any]:
    prompts = {name: used for shard in shards for name, used in sorted(shard.summary.get("prompts", {}).items())}
    return {"run": config.to_dict(), "pipeline_version": rms.PIPELINE_VERSION,
            "prompts": prompts,  # the templates the steps really used (version + sha256 of the text)
            # per shard: the checkpoints used and what each role's backend served
            "shards": [{"shard": shard.summary.get("shard"), "fingerprints": shard.summary.get("fingerprints", {}),
                        "models": shard.summary.get("models", {})}
                       for shard in shards],
            "base_release": bool(base.rows)}


def _report(shards: list[ShardData], selection: Selection, rows) -> dict[str, Any]:
    pair_counts = Counter(row["risk_category"] for split_rows in rows[rms.PAIRS].values() for row in split_rows)
    funnel = _funnel(shards, selection.candidates, len(selection.released))
    return {"release": None, "pairs": sum(len(v) for v in rows[rms.PAIRS].values()), "new_pairs": len(selection.released),
            "images_in": funnel["ingest"][0], "images_released": len({pair["image_id"] for pair, _ in selection.released}),
            "images_rejected": sum(1 for r in selection.rejects if r.kind == "image"), "funnel": funnel,
            "causes": reject_causes(selection.rejects), "problems": [], "categories": dict(pair_counts)}


def _reject_order(reject: Reject):
    return (reject.kind, reject.image_id, reject.item, reject.stage)


def _pair_reject(stage: str, pair: dict, records: dict[str, ImageRecord], reason: str) -> Reject:
    record = records.get(pair["image_id"])
    return Reject("pair", stage, reason, pair["key"], pair["image_id"],
                  {"cause": stage, "risk": pair["risk"], "text": pair["text"], "safe_twin_text": pair["safe_twin_text"],
                   "responses": {"safe": pair["safe_response"], "unsafe": pair["unsafe_response"]},
                   "image_file": record.filename if record else ""})


def release_rows(selection: Selection, config: RunConfig, base: BaseRelease) -> dict[str, dict[str, list[dict]]]:
    """The rows the release writer is given, per source config and split: the base release's, then one pair
    and its two responses per released pair (the writer derives `preference`). A new photo is given by its
    path: the writer reads its bytes when it writes the row group, so no photo is held here."""
    rows: dict[str, dict[str, list[dict]]] = {c: {s: [] for s in config.splits} for c in rms.SOURCE_CONFIGS}
    for config_name, splits in base.rows.items():
        for split, split_rows in splits.items():
            if config_name in rows:
                rows[config_name].setdefault(split, []).extend(split_rows)
    for pair, category in selection.released:
        record = selection.records[pair["image_id"]]
        image = {"bytes": None, "path": str(_checked_photo(selection.image_dir[pair["image_id"]], record.image_id))}
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


def _checked_photo(images: Path, image_id: str) -> Path:
    """A shard's normalised photo, checked against its id (the hash of its bytes) and not kept: ingest does
    not fsync each photo, so a power failure can damage one; it must never reach a release. (The writer
    checks again as it writes; this check comes first, to say which run to redo.)"""
    path = images / f"{image_id}.jpg"
    if rms.image_id_for(path.read_bytes()) != image_id:
        raise ValueError(f"{path}: its bytes do not match its id {image_id} (damaged, e.g. by a power failure); rerun "
                         "that shard's `python -m generation run` (it ingests damaged photos again), then merge")
    return path


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
