"""Build the committed sample release from the hand-curated pairs and photos in `sample/`.

Reads `sample/images/MANIFEST.csv` (file, source, license, attribution_url, description) and
`sample/curated_pairs.jsonl` (one pair per line with its safe twin and both responses), and writes a
release (default `sample_release/`) with `generator = curated`, split by image, then validates it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import rms_dataset as rms
from generation.engine.outputs import check_replaceable_release, locked
from generation.release.validate import validate_release
from generation.release.write import write_release
from typed_config import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "sample"
SAMPLE_RELEASE = REPO_ROOT / "sample_release"
SAMPLE_VERSION = "0.1.0"
MANIFEST_COLUMNS = ("file", "source", "license", "attribution_url", "description")
PAIR_KEYS = (
    "image_file", "scene", "text", "risk_category", "risk_subcategory", "risk_rationale",
    "safe_twin_text", "safe_response", "unsafe_response",
)
# A person wrote and checked each curated pair: the verdicts are theirs, there are no measured scores.
CURATED_VERIFICATION = {
    "text_alone": rms.SAFE, "image_alone": rms.SAFE, "pair": rms.UNSAFE, "safe_twin": rms.SAFE,
    "verifier": "human (curated)", "mode": rms.VERIFICATION_CURATED,
    "scores": {check: None for check in rms.CHECKS}, "margin": None,
}


def read_manifest(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected {', '.join(MANIFEST_COLUMNS)}")
        manifest = {}
        for line, row in enumerate(reader, start=2):
            for column in ("file", "source", "license"):
                if not (row[column] or "").strip():
                    raise ValueError(f"{path}, line {line}, field '{column}': empty; every photo needs it")
            manifest[row["file"]] = row
    return manifest


def read_curated_pairs(path: Path) -> list[dict]:
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({error})") from None
            for key in PAIR_KEYS:
                if not isinstance(record.get(key), str) or not record[key].strip():
                    raise ValueError(f"{path}, line {line_number}, field '{key}': missing or empty")
            pairs.append(record)
    return pairs


def curated_rows(sample_dir: Path = SAMPLE_DIR) -> dict[str, dict[str, list[dict]]]:
    """rows[config][split] for the curated sample."""
    images_dir = sample_dir / "images"
    manifest = read_manifest(images_dir / "MANIFEST.csv")
    rows: dict[str, dict[str, list[dict]]] = {config: {"train": [], "test": []} for config in rms.SOURCE_CONFIGS}
    for line_number, pair in enumerate(read_curated_pairs(sample_dir / "curated_pairs.jsonl"), start=1):
        entry = manifest.get(pair["image_file"])
        if entry is None:
            raise ValueError(
                f"{sample_dir / 'curated_pairs.jsonl'}, line {line_number}, field 'image_file': "
                f"{pair['image_file']!r} is not in {images_dir / 'MANIFEST.csv'}"
            )
        image_bytes = (images_dir / pair["image_file"]).read_bytes()
        image_id = rms.image_id_for(image_bytes)
        pair_id = rms.pair_id_for(image_id, pair["text"])
        split = rms.split_for_image(image_id, rms.SAMPLE_SPLITS)
        image = {"bytes": image_bytes, "path": pair["image_file"]}
        rows[rms.PAIRS][split].append(
            {
                "id": pair_id,
                "image": image,
                "image_id": image_id,
                "image_source": entry["source"],
                "image_license": entry["license"],
                "image_attribution": entry["attribution_url"],
                "scene": pair["scene"],
                "text": pair["text"],
                "risk_category": pair["risk_category"],
                "risk_subcategory": pair["risk_subcategory"],
                "risk_rationale": pair["risk_rationale"],
                "safe_twin_text": pair["safe_twin_text"],
                "verification": {**CURATED_VERIFICATION, "scores": dict(CURATED_VERIFICATION["scores"])},
                "generator": rms.CURATED,
                "pipeline_version": rms.PIPELINE_VERSION,
            }
        )
        for config, label in rms.RESPONSE_CONFIGS.items():
            response = pair[f"{label}_response"]
            rows[config][split].append(
                {
                    "id": rms.response_id_for(pair_id, label, response),
                    "pair_id": pair_id,
                    "image": image,
                    "image_id": image_id,
                    "text": pair["text"],
                    "risk_category": pair["risk_category"],
                    "response": response,
                    "label": label,
                    "generator": rms.CURATED,
                }
            )
    return rows


def build_sample(out_dir: Path = SAMPLE_RELEASE, sample_dir: Path = SAMPLE_DIR, overwrite: bool = True) -> Path:
    release = write_release(
        out_dir,
        curated_rows(sample_dir),
        pretty_name="RMS sample release (hand-curated)",
        version=SAMPLE_VERSION,
        overwrite=overwrite,
    )
    problems = validate_release(str(release))
    if problems:
        raise ValueError("the sample release does not validate:\n" + "\n".join(f"  - {p}" for p in problems))
    return release


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=SAMPLE_RELEASE, help="release directory (default: sample_release/)")
    parser.add_argument("--sample-dir", type=Path, default=SAMPLE_DIR, help="curated sources (default: sample/)")


def main(args: argparse.Namespace) -> int:
    try:
        with locked(args.out):
            check_replaceable_release(args.out)
            release = build_sample(args.out, args.sample_dir)
    except ConfigError as error:  # --out holds files that are not a release, or another process writes it
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {release}; it validates.")
    return 0
