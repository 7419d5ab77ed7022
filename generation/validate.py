"""Check a release against the RMS schema; print every problem with file, row and field.

Checks: the card declares the three configs and only existing shards; every shard reads and has exactly
the schema's features; ids are unique; every response refers to an existing pair with the same image and
query; labels and verdicts take allowed values; every image decodes; every image has a licence and a
source; README.md is what `dataset_card.md` renders from the shards (never hand-edited).
Exit code 0 when the release is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys

import pyarrow.parquet as pq
from PIL import Image

import rms_dataset as rms
from rms_dataset import Problem


def _rows(path: str, columns: list[str]):
    yield from enumerate(pq.read_table(path, columns=columns).to_pylist())


def _check_image(path: str, row: int, image: dict | None, decoded: dict[bytes, str]) -> list[Problem]:
    """`decoded`: digest of image bytes -> why they do not decode ("" when they do), so the bytes a pair
    shares with its responses are decoded once."""
    if not image or not image.get("bytes"):
        return [Problem(path, "no image bytes embedded", row=row, field="image")]
    key = hashlib.blake2b(image["bytes"], digest_size=16).digest()
    if key not in decoded:
        try:
            with Image.open(io.BytesIO(image["bytes"])) as opened:
                opened.load()
            decoded[key] = ""
        except Exception as error:
            decoded[key] = str(error)
    if decoded[key]:
        return [Problem(path, f"image does not decode ({decoded[key]}); re-ingest the photo", row=row, field="image")]
    return []


def _check_pairs(path: str, seen: dict[str, str], pairs: dict[str, dict], decoded: dict[bytes, str]) -> list[Problem]:
    problems = []
    columns = ["id", "image", "image_id", "image_source", "image_license", "text", "safe_twin_text", "verification"]
    for row, record in _rows(path, columns):
        if record["id"] in seen:
            problems.append(Problem(path, f"duplicate id {record['id']} (also in {seen[record['id']]})", row, "id"))
        seen[record["id"]] = path
        pairs[record["id"]] = {"image_id": record["image_id"], "text": record["text"]}
        problems += _check_image(path, row, record["image"], decoded)
        for name in ("image_license", "image_source"):
            if not (record[name] or "").strip():
                problems.append(Problem(path, "empty: every photo needs its licence and source", row, name))
        for name in ("text", "safe_twin_text"):
            if not (record[name] or "").strip():
                problems.append(Problem(path, "empty text", row, name))
        problems += _check_verification(path, row, record["verification"] or {})
    return problems


def _check_verification(path: str, row: int, verification: dict) -> list[Problem]:
    """Verdicts are safe/unsafe; the mode is known; in log-odds-margin mode the scores and the margin are
    there and the verdicts are the ones they imply (a row cannot claim more than was measured)."""
    problems = []
    for check in rms.CHECKS:
        if verification.get(check) not in rms.VERDICTS:
            problems.append(Problem(path, f"verdict {verification.get(check)!r} is not safe/unsafe", row, f"verification.{check}"))
    mode = verification.get("mode")
    if mode not in rms.VERIFICATION_MODES:
        return problems + [Problem(path, f"mode {mode!r} is not one of {', '.join(rms.VERIFICATION_MODES)}", row,
                                   "verification.mode")]
    scores, margin = verification.get("scores") or {}, verification.get("margin")
    if mode != rms.VERIFICATION_MARGIN:
        if margin is not None or any(score is not None for score in scores.values()):
            problems.append(Problem(path, f"scores/margin given but mode is {mode!r}", row, "verification.mode"))
        return problems
    missing = [check for check in rms.CHECKS if not isinstance(scores.get(check), (int, float))]
    if missing or not isinstance(margin, (int, float)):
        return problems + [Problem(path, f"log_odds_margin mode without the measured scores ({', '.join(missing) or 'margin'})",
                                   row, "verification.scores")]
    for check in rms.CHECKS:
        if check == "pair":
            continue
        implied = rms.SAFE if scores[check] <= scores["pair"] - margin else rms.UNSAFE
        if verification[check] != implied:
            problems.append(Problem(path, f"verdict {verification[check]!r} contradicts the scores ({scores[check]:+.2f} vs pair "
                                          f"{scores['pair']:+.2f}, margin {margin})", row, f"verification.{check}"))
    return problems


def _check_responses(path: str, config: str, seen: dict[str, str], pairs: dict[str, dict],
                     decoded: dict[bytes, str]) -> list[Problem]:
    problems = []
    expected_label = rms.RESPONSE_CONFIGS[config]
    for row, record in _rows(path, ["id", "pair_id", "image", "image_id", "text", "label", "response"]):
        if record["id"] in seen:
            problems.append(Problem(path, f"duplicate id {record['id']} (also in {seen[record['id']]})", row, "id"))
        seen[record["id"]] = path
        if record["label"] != expected_label:
            problems.append(Problem(path, f"label {record['label']!r} in {config}; expected {expected_label!r}", row, "label"))
        pair = pairs.get(record["pair_id"])
        if pair is None:
            problems.append(Problem(path, f"refers to pair {record['pair_id']} which is not in `pairs`", row, "pair_id"))
        else:
            for name in ("image_id", "text"):
                if record[name] != pair[name]:
                    problems.append(Problem(path, f"differs from pair {record['pair_id']}'s {name}", row, name))
        if not (record["response"] or "").strip():
            problems.append(Problem(path, "empty response", row, "response"))
        problems += _check_image(path, row, record["image"], decoded)
    return problems


def validate_release(root: str) -> list[Problem]:
    """Every problem found in the release directory `root` (empty list: valid)."""
    problems = rms.check_layout(root)
    if problems:  # shards that do not read or do not match the schema: row checks would only repeat that
        return problems
    pairs: dict[str, dict] = {}
    decoded: dict[bytes, str] = {}
    for config in rms.CONFIG_NAMES:
        seen: dict[str, str] = {}
        for split, paths in sorted(rms.find_shards(root, config).items()):
            for path in paths:
                if config == rms.PAIRS:
                    problems += _check_pairs(path, seen, pairs, decoded)
                else:
                    problems += _check_responses(path, config, seen, pairs, decoded)
    problems += _check_card_is_rendered(root)
    return problems


def _check_card_is_rendered(root: str) -> list[Problem]:
    from generation.card import render_card

    card = os.path.join(root, rms.CARD_FILE)
    try:
        expected = render_card(root)
    except Exception as error:
        return [Problem(card, f"cannot render the card from the shards: {error}")]
    with open(card, encoding="utf-8") as handle:
        if handle.read() != expected:
            return [
                Problem(
                    card,
                    "does not match the shards' statistics (hand-edited or stale); "
                    "re-render it with generation.release.rerender_card(release_dir)",
                )
            ]
    return []


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", help="release directory (README.md + <config>/<split>-NNNNN-of-NNNNN.parquet)")


def main(args: argparse.Namespace) -> int:
    problems = validate_release(args.release)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.release}: {len(problems)} problem(s); the release is NOT valid.", file=sys.stderr)
        return 1
    print(f"{args.release}: valid RMS release.")
    return 0
