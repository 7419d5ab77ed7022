"""Check a release against the RMS schema and its recorded checksums; print every problem with file, row and field.

Checks: every file's sha256 is the one `checksums.sha256` records (a changed byte anywhere is named), and no
file was added or removed; the card declares every config and only existing shards; every shard reads and has
exactly the schema's features; every row's ids are the hashes of its content (`image_id` of the photo's
bytes, `id` of the image id and query, of the response, of the chosen and rejected responses), so a changed
row is named; ids are unique; every response and preference row refers to an existing pair with the same
image and query, and the preference rows carry the pair's own responses; labels and verdicts take allowed
values; every image decodes; every image has a licence and a source; README.md and LICENSE.md are what
`dataset_card.md` renders from the shards (never hand-edited). Shards are read one row group at a time.
Exit code 0 when the release is valid, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from collections.abc import Iterator

import pyarrow.parquet as pq
from datasets.utils.tqdm import tqdm
from PIL import Image

import rms_dataset as rms
from rms_dataset import Problem


def _digest(data: bytes | str) -> bytes:
    return hashlib.blake2b(data.encode("utf-8") if isinstance(data, str) else data, digest_size=16).digest()


class _Checker:
    """Walks the shards a row group at a time, remembering only ids and digests across rows."""

    def __init__(self, progress):
        self.progress = progress
        self.decoded: dict[bytes, str] = {}  # digest of image bytes -> why they do not decode ("" when they do)
        self.pairs: dict[str, tuple[str, str]] = {}  # pair id -> (image_id, text)
        self.responses: dict[tuple[str, str], set[bytes]] = {}  # (pair id, label) -> digests of its responses
        self.unreadable: list[Problem] = []  # row groups that do not decode

    def rows(self, path: str, columns: list[str]) -> Iterator[tuple[int, dict]]:
        parquet = pq.ParquetFile(path)
        row = 0
        for group in range(parquet.num_row_groups):
            try:
                records = parquet.read_row_group(group, columns=columns).to_pylist()
            except Exception as error:  # a damaged page: name the rows it holds and go on with the next group
                size = parquet.metadata.row_group(group).num_rows
                self.unreadable.append(Problem(path, f"rows {row}-{row + size - 1} (row group {group}) cannot be read "
                                                     f"({error}); the shard is damaged: re-generate or re-download it"))
                row += size
                self.progress.update(size)
                continue
            for record in records:
                yield row, record
                row += 1
            self.progress.update(len(records))

    def image(self, path: str, row: int, record: dict) -> list[Problem]:
        image = record["image"]
        if not image or not image.get("bytes"):
            return [Problem(path, "no image bytes embedded", row=row, field="image")]
        problems = []
        if rms.image_id_for(image["bytes"]) != record["image_id"]:
            problems.append(Problem(path, f"the image's bytes hash to {rms.image_id_for(image['bytes'])}, not its image_id "
                                          f"{record['image_id']}: the photo was changed", row, "image"))
        key = _digest(image["bytes"])
        if key not in self.decoded:
            try:
                with Image.open(io.BytesIO(image["bytes"])) as opened:
                    opened.load()
                self.decoded[key] = ""
            except Exception as error:
                self.decoded[key] = str(error)
        if self.decoded[key]:
            problems.append(Problem(path, f"image does not decode ({self.decoded[key]}); re-ingest the photo", row, "image"))
        return problems

    def pairs_shard(self, path: str, seen: dict[str, str]) -> list[Problem]:
        problems = []
        columns = ["id", "image", "image_id", "image_source", "image_license", "text", "safe_twin_text", "verification"]
        for row, record in self.rows(path, columns):
            problems += _unique(path, row, record["id"], seen)
            if rms.pair_id_for(record["image_id"], record["text"]) != record["id"]:
                problems.append(Problem(path, "id is not the hash of image_id and text: the row was changed", row, "id"))
            self.pairs[record["id"]] = (record["image_id"], record["text"])
            problems += self.image(path, row, record)
            for name in ("image_license", "image_source"):
                if not (record[name] or "").strip():
                    problems.append(Problem(path, "empty: every photo needs its licence and source", row, name))
            for name in ("text", "safe_twin_text"):
                if not (record[name] or "").strip():
                    problems.append(Problem(path, "empty text", row, name))
            problems += _check_verification(path, row, record["verification"] or {})
        return problems

    def responses_shard(self, path: str, config: str, seen: dict[str, str]) -> list[Problem]:
        problems = []
        expected_label = rms.RESPONSE_CONFIGS[config]
        for row, record in self.rows(path, ["id", "pair_id", "image", "image_id", "text", "label", "response"]):
            problems += _unique(path, row, record["id"], seen)
            label = _verdict(record["label"])
            if label != expected_label:
                problems.append(Problem(path, f"label {label!r} in {config}; expected {expected_label!r}", row, "label"))
            elif rms.response_id_for(record["pair_id"], label, record["response"] or "") != record["id"]:
                problems.append(Problem(path, "id is not the hash of pair_id, label and response: the row was changed",
                                        row, "id"))
            problems += self._refers_to_pair(path, row, record, record["text"])
            if not (record["response"] or "").strip():
                problems.append(Problem(path, "empty response", row, "response"))
            self.responses.setdefault((record["pair_id"], label), set()).add(_digest(record["response"] or ""))
            problems += self.image(path, row, record)
        return problems

    def preference_shard(self, path: str, seen: dict[str, str]) -> list[Problem]:
        problems = []
        columns = ["id", "pair_id", "image", "image_id", "prompt", "chosen", "rejected"]
        for row, record in self.rows(path, columns):
            problems += _unique(path, row, record["id"], seen)
            turns = {name: record[name] or [] for name in ("prompt", "chosen", "rejected")}
            wanted = {"prompt": "user", "chosen": "assistant", "rejected": "assistant"}
            wrong = [name for name, messages in turns.items()
                     if len(messages) != 1 or messages[0]["role"] != wanted[name]]
            if wrong:
                problems += [Problem(path, f"must be one {wanted[name]} message", row, name) for name in wrong]
                continue
            problems += self._refers_to_pair(path, row, record, turns["prompt"][0]["content"], text_field="prompt")
            texts = {name: turns[name][0]["content"] or "" for name in ("chosen", "rejected")}
            for name, label in (("chosen", rms.SAFE), ("rejected", rms.UNSAFE)):
                if _digest(texts[name]) not in self.responses.get((record["pair_id"], label), set()):
                    problems.append(Problem(path, f"is not one of pair {record['pair_id']}'s {label} responses", row, name))
            expected_id = rms.preference_id_for(rms.response_id_for(record["pair_id"], rms.SAFE, texts["chosen"]),
                                                rms.response_id_for(record["pair_id"], rms.UNSAFE, texts["rejected"]))
            if expected_id != record["id"]:
                problems.append(Problem(path, "id is not the hash of its chosen and rejected responses: the row was changed",
                                        row, "id"))
            problems += self.image(path, row, record)
        return problems

    def _refers_to_pair(self, path: str, row: int, record: dict, text: str, text_field: str = "text") -> list[Problem]:
        pair = self.pairs.get(record["pair_id"])
        if pair is None:
            return [Problem(path, f"refers to pair {record['pair_id']} which is not in `pairs`", row, "pair_id")]
        problems = []
        if record["image_id"] != pair[0]:
            problems.append(Problem(path, f"differs from pair {record['pair_id']}'s image_id", row, "image_id"))
        if text != pair[1]:
            problems.append(Problem(path, f"differs from pair {record['pair_id']}'s text", row, text_field))
        return problems


def _unique(path: str, row: int, row_id: str, seen: dict[str, str]) -> list[Problem]:
    if row_id in seen:
        return [Problem(path, f"duplicate id {row_id} (also in {seen[row_id]})", row, "id")]
    seen[row_id] = path
    return []


def _verdict(value) -> str | None:
    """A verdict or label as stored (ClassLabel index) or given (name), as its name; None when neither."""
    if isinstance(value, int) and 0 <= value < len(rms.VERDICTS):
        return rms.VERDICTS[value]
    return value if value in rms.VERDICTS else None


def _check_verification(path: str, row: int, verification: dict) -> list[Problem]:
    """Verdicts are safe/unsafe; the mode is known; in log-odds-margin mode the scores and the margin are
    there and the verdicts are the ones they imply (a row cannot claim more than was measured)."""
    problems = []
    verdicts = {check: _verdict(verification.get(check)) for check in rms.CHECKS}
    for check, verdict in verdicts.items():
        if verdict is None:
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
        if verdicts[check] != implied:
            problems.append(Problem(path, f"verdict {verdicts[check]!r} contradicts the scores ({scores[check]:+.2f} vs pair "
                                          f"{scores['pair']:+.2f}, margin {margin})", row, f"verification.{check}"))
    return problems


def validate_release(root: str) -> list[Problem]:
    """Every problem found in the release directory `root` (empty list: valid)."""
    layout = rms.check_layout(root)
    if not os.path.isdir(root) or not os.path.exists(os.path.join(root, rms.CARD_FILE)):
        return layout
    problems = rms.verify_checksums(root)
    if layout:  # shards that do not read or do not match the schema: row checks would only repeat that
        return problems + layout
    shards = {config: sorted(rms.find_shards(root, config).items()) for config in rms.CONFIG_NAMES}
    total = sum(pq.ParquetFile(path).metadata.num_rows for by_split in shards.values() for _, paths in by_split
                for path in paths)
    with tqdm(total=total, unit=" rows", desc=f"Validating {os.path.basename(os.path.normpath(root))}", disable=None) as progress:
        checker = _Checker(progress)
        for config in rms.CONFIG_NAMES:  # pairs first, the responses, then preference (it refers to both)
            seen: dict[str, str] = {}
            for _, paths in shards[config]:
                for path in paths:
                    if config == rms.PAIRS:
                        problems += checker.pairs_shard(path, seen)
                    elif config == rms.PREFERENCE:
                        problems += checker.preference_shard(path, seen)
                    else:
                        problems += checker.responses_shard(path, config, seen)
    problems += checker.unreadable + _check_rendered(root)
    return problems


def _check_rendered(root: str) -> list[Problem]:
    from generation.release.card import LICENSE_FILE, render_card, render_license

    problems = []
    for name, render in ((rms.CARD_FILE, render_card), (LICENSE_FILE, render_license)):
        path = os.path.join(root, name)
        try:
            expected = render(root)
        except Exception as error:
            problems.append(Problem(path, f"cannot render it from the shards: {error}"))
            continue
        if not os.path.exists(path):
            problems.append(Problem(path, "missing; re-render it with "
                                          "generation.release.write.rerender_card(release_dir)"))
            continue
        with open(path, encoding="utf-8") as handle:
            if handle.read() != expected:
                problems.append(Problem(path, "does not match the shards' statistics (hand-edited or stale); "
                                              "re-render it with generation.release.write.rerender_card(release_dir)"))
    return problems


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
