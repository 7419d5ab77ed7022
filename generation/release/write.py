"""Write a release directory: parquet shards per config/split, provenance files, the rendered card and
checksums.sha256.

The layout is the one `rms_dataset` documents and the Hub receives unchanged (`is_declared` says whether a
path belongs to it; `publish` uploads nothing else).

Streaming. `write_release` takes, per source config and split, any iterable of rows (read once). A row's photo
may be a path (``{"path": "/abs/photo.jpg", "bytes": None}``): its bytes are read when its row group is written
and never collected, so memory holds the rows' text, not the photos. Rows are sorted by id, cut into shards
of about `SHARD_TARGET_BYTES` (balanced: every shard of a split gets about the same bytes, like
`push_to_hub`'s 500 MB) and written `ROW_GROUP_ROWS` rows at a time (the row group size `datasets` uses for
image datasets, which the dataset viewer reads one at a time). The `preference` config is derived here from
the pairs and their two responses. Every photo's bytes are checked against its `image_id` (the sha256 of
its bytes) as they are written, and `checksums.sha256` records the sha256 of every other file.

Writing is crash-safe. The release is built in a sibling ``.<name>.tmp-<pid>-*`` directory, renamed to
``.<name>.new-<pid>-*`` once complete, then swapped with the existing release in ONE atomic
``renameat2(RENAME_EXCHANGE)`` (Linux), so a kill at any moment leaves either the old or the new release
in place, never none and never half of one. Where the filesystem cannot exchange, the old release is moved
aside to ``.<name>.old-<pid>-*`` first; if a kill lands between the two renames, the next write (or
`recover_release`) puts the complete new release (else the old one) back. Leftovers of dead writers are
removed at the start of every write. An existing release is only replaced when `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from datasets.utils.tqdm import tqdm

import rms_dataset as rms
from generation.release.card import LICENSE_FILE, RELEASE_INFO, ReleaseInfo, render_card, render_license

logger = logging.getLogger(__name__)

SHARD_TARGET_BYTES = 500 * 1000**2  # about 500 MB per shard, as push_to_hub
ROW_GROUP_ROWS = 100  # datasets' parquet row group size for image datasets: what the viewer reads at once
PROVENANCE_FILES = ("taxonomy.json", "taxonomy.png", "pipeline_config.yaml", "rejects.jsonl")
TOP_LEVEL_FILES = frozenset({rms.CARD_FILE, rms.CHECKSUMS_FILE, LICENSE_FILE, RELEASE_INFO, *PROVENANCE_FILES})


def is_declared(path_in_release: str) -> bool:
    """Whether a POSIX path inside a release belongs to the layout: the card, checksums.sha256, release.json,
    the provenance files, or ``<config>/<split>-NNNNN-of-NNNNN.parquet`` of a known config."""
    parts = path_in_release.split("/")
    if len(parts) == 1:
        return parts[0] in TOP_LEVEL_FILES
    return len(parts) == 2 and parts[0] in rms.CONFIG_NAMES and rms.SHARD_PATTERN.match(parts[1]) is not None


def _row_bytes(row: dict) -> int:
    """A row's size in a shard, estimated from its photo (size on disk or in memory) and its text."""
    image = row.get("image") or {}
    photo = len(image["bytes"]) if image.get("bytes") else os.path.getsize(image["path"])
    return photo + sum(len(value) for value in row.values() if isinstance(value, str))


def _collect(config: str, split: str, rows: Iterable[dict]) -> list[dict]:
    """The rows of one config/split, checked field by field and sorted by id. A photo given by path stays a
    path: only its size is read."""
    expected = set(rms.FEATURES[config])
    collected = []
    for index, row in enumerate(rows):
        missing, extra = expected - set(row), set(row) - expected
        if missing or extra:
            raise ValueError(
                f"{config}/{split} row {index} (id={row.get('id')!r}): "
                f"missing fields {sorted(missing)}, unexpected fields {sorted(extra)}; see rms_dataset.FEATURES"
            )
        image = row["image"]
        if not isinstance(image, dict):  # a PIL image: encode it now (the caller holds it anyway)
            image = rms.FEATURES[config]["image"].encode_example(image)
        if not image.get("bytes") and not image.get("path"):
            raise ValueError(f"{config}/{split} row {index} (id={row['id']!r}), field 'image': neither bytes nor a path")
        collected.append({**row, "image": image})
    return sorted(collected, key=lambda row: row["id"])


def _preference_rows(pairs: Sequence[dict], safe: Sequence[dict], unsafe: Sequence[dict]) -> list[dict]:
    """One TRL preference row per pair and (guidance, unsafe) response pair: the photo, the query as the user
    turn, the guidance response chosen and the unsafe one rejected."""
    by_pair: dict[str, tuple[list[dict], list[dict]]] = {}
    for index, responses in enumerate((safe, unsafe)):
        for response in responses:
            by_pair.setdefault(response["pair_id"], ([], []))[index].append(response)
    rows = []
    for pair in pairs:
        chosen_rows, rejected_rows = by_pair.get(pair["id"], ([], []))
        for chosen, rejected in itertools.product(chosen_rows, rejected_rows):
            rows.append({
                "id": rms.preference_id_for(chosen["id"], rejected["id"]), "pair_id": pair["id"],
                "image": pair["image"], "image_id": pair["image_id"],
                "prompt": [{"role": "user", "content": pair["text"]}],
                "chosen": [{"role": "assistant", "content": chosen["response"]}],
                "rejected": [{"role": "assistant", "content": rejected["response"]}],
                "risk_category": pair["risk_category"],
            })
    return sorted(rows, key=lambda row: row["id"])


def plan_shards(sizes: Sequence[int], target_bytes: int) -> list[range]:
    """Cut rows (in order, with these sizes) into contiguous shards of about `target_bytes`, balanced: the
    fewest shards of at most about the target, each holding about the same bytes."""
    total = sum(sizes)
    count = max(1, min(len(sizes), -(-total // target_bytes)))
    bounds, start, cumulative = [], 0, 0
    for index, size in enumerate(sizes):
        if len(bounds) < count - 1 and index > start and cumulative + size / 2 >= total * (len(bounds) + 1) / count:
            bounds.append(range(start, index))
            start = index
        cumulative += size
    return bounds + [range(start, len(sizes))]


def _photo(config: str, row: dict) -> dict:
    """The row with its photo's bytes, read now if it was given by path, and checked against its image_id."""
    image = row["image"]
    if image.get("bytes"):
        data, name = image["bytes"], image.get("path")
    else:
        data, name = Path(image["path"]).read_bytes(), os.path.basename(image["path"])
    if rms.image_id_for(data) != row["image_id"]:
        source = "" if image.get("bytes") else f" ({image['path']})"
        raise ValueError(f"{config} row id={row['id']!r}: the photo's bytes{source} hash to {rms.image_id_for(data)}, "
                         f"not its image_id {row['image_id']}; the photo was changed after it was ingested")
    return {**row, "image": {"bytes": data, "path": name}}


def _write_shard(path: Path, config: str, rows: Sequence[dict], progress) -> None:
    features = rms.FEATURES[config]
    schema = features.arrow_schema
    with pq.ParquetWriter(str(path), schema) as writer:
        for start in range(0, len(rows), ROW_GROUP_ROWS):
            group = [features.encode_example(_photo(config, row)) for row in rows[start : start + ROW_GROUP_ROWS]]
            writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group_size=ROW_GROUP_ROWS)
            progress.update(len(group))


def _write_config(directory: Path, config: str, by_split: Mapping[str, Sequence[dict]], target_bytes: int,
                  progress) -> None:
    (directory / config).mkdir(parents=True, exist_ok=True)
    for split, rows in by_split.items():
        shards = plan_shards([_row_bytes(row) for row in rows], target_bytes)
        for index, rows_range in enumerate(shards):
            path = directory / config / rms.shard_name(split, index, len(shards))
            _write_shard(path, config, rows[rows_range.start : rows_range.stop], progress)
        logger.debug("%s/%s: %d rows in %d shard(s)", config, split, len(rows), len(shards))


def write_checksums(root: str | Path) -> None:
    """(Re)write checksums.sha256: the sha256 of every other file of the release, `sha256sum -c` format."""
    root = Path(root)
    lines = [f"{rms.file_sha256(str(root / path))}  {path}\n" for path in rms.release_file_paths(str(root))]
    (root / rms.CHECKSUMS_FILE).write_text("".join(lines), encoding="utf-8")


def write_release(
    out_dir: str | Path,
    rows: Mapping[str, Mapping[str, Iterable[dict]]],
    *,
    taxonomy: dict | None = None,
    pipeline_config: dict | None = None,
    rejects: Iterable[dict] | None = None,
    pretty_name: str | None = None,
    version: str = "0.0.0",
    repo_id: str | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    overwrite: bool = False,
    shard_bytes: int = SHARD_TARGET_BYTES,
) -> Path:
    """Write `rows[config][split]` (iterables of dicts matching `rms_dataset.FEATURES[config]`, for the
    source configs pairs, safe_responses and unsafe_responses) as a release; `preference` is derived.

    Images are `{"bytes": ..., "path": name}` dicts, `{"path": "/abs/file", "bytes": None}` (read when
    written) or PIL images. Every source config must have rows; a split may be empty. Returns the release
    directory.
    """
    out_dir = Path(out_dir)
    undeclared = sorted(name for name in (extra_files or {}) if not is_declared(name))
    if undeclared:
        raise ValueError(f"write_release: extra file(s) {undeclared} are not part of the release layout "
                         f"(top-level files: {', '.join(sorted(TOP_LEVEL_FILES))})")
    unknown = sorted(set(rows) - set(rms.SOURCE_CONFIGS))
    if unknown:
        raise ValueError(f"write_release: config(s) {unknown} are not given to the writer; give "
                         f"{', '.join(rms.SOURCE_CONFIGS)} (`{rms.PREFERENCE}` is derived from them)")
    recover_release(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another directory or pass overwrite=True")
    collected = {config: {split: _collect(config, split, split_rows) for split, split_rows in rows.get(config, {}).items()}
                 for config in rms.SOURCE_CONFIGS}
    for config in rms.SOURCE_CONFIGS:
        collected[config] = {split: split_rows for split, split_rows in collected[config].items() if split_rows}
        if not collected[config]:
            raise ValueError(
                f"write_release: config '{config}' has no rows; a release needs at least one row per config "
                "(an empty split is left out, an empty config cannot be loaded)"
            )
    collected[rms.PREFERENCE] = {
        split: preference for split, pairs in collected[rms.PAIRS].items()
        if (preference := _preference_rows(pairs, collected[rms.SAFE_RESPONSES].get(split, []),
                                           collected[rms.UNSAFE_RESPONSES].get(split, [])))
    }
    if not collected[rms.PREFERENCE]:
        raise ValueError("write_release: no pair has both a safe and an unsafe response, so the preference config "
                         "would be empty; a release needs at least one")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    try:
        total = sum(len(split_rows) for by_split in collected.values() for split_rows in by_split.values())
        with tqdm(total=total, unit=" rows", desc=f"Writing release {out_dir.name}", disable=None) as progress:
            for config in rms.CONFIG_NAMES:
                _write_config(staging, config, collected[config], shard_bytes, progress)
        if taxonomy is not None:
            (staging / "taxonomy.json").write_text(json.dumps(taxonomy, indent=2, sort_keys=True) + "\n")
        if pipeline_config is not None:
            (staging / "pipeline_config.yaml").write_text(yaml.safe_dump(pipeline_config, sort_keys=True))
        if rejects is not None:
            with open(staging / "rejects.jsonl", "w", encoding="utf-8") as handle:
                for reject in rejects:
                    handle.write(json.dumps(reject, sort_keys=True, ensure_ascii=False) + "\n")
        for name, data in (extra_files or {}).items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        defaults = ReleaseInfo()
        ReleaseInfo(
            pretty_name=pretty_name or defaults.pretty_name, version=version, repo_id=repo_id or defaults.repo_id
        ).write(staging)
        (staging / rms.CARD_FILE).write_text(render_card(staging), encoding="utf-8")
        (staging / LICENSE_FILE).write_text(render_license(staging), encoding="utf-8")
        write_checksums(staging)
        complete = staging.with_name(staging.name.replace(".tmp-", ".new-", 1))
        os.replace(staging, complete)  # from here on a recovery may promote it: it is a whole release
        staging = complete
        _swap_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote %s", out_dir)
    return out_dir


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Put the complete release `staging` at `out_dir`; afterwards `staging` holds the old release (or
    nothing) and is removed by the caller."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
    elif not _exchange(staging, out_dir):
        retired = staging.with_name(staging.name.replace(".new-", ".old-", 1))
        os.replace(out_dir, retired)
        os.replace(staging, out_dir)  # a kill just before this line is repaired by recover_release
        os.replace(retired, staging)
    _fsync_dir(out_dir.parent)


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<state>tmp|new|old)-(?:(?P<pid>\d+)-)?[^/]*$")


def recover_release(out_dir: str | Path) -> list[str]:
    """Repair what an interrupted write left next to `out_dir` and return what was done (also logged).

    If `out_dir` is missing and a complete ``.new-*`` (else a moved-aside ``.old-*``) release exists, it is
    put back at `out_dir`. Every leftover of a writer that is no longer running is then removed
    (``.tmp-*`` are incomplete by construction)."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return []
    leftovers = []
    for path in out_dir.parent.iterdir():
        match = _LEFTOVER.match(path.name)
        if match and match["name"] == out_dir.name and path.is_dir() and not _running(match["pid"]):
            leftovers.append((match["state"], path.stat().st_mtime_ns, path))
    done = []
    if not out_dir.exists():
        for state in ("new", "old"):
            candidates = [path for kind, _, path in sorted(leftovers, key=lambda item: item[1], reverse=True) if kind == state]
            if candidates:
                os.replace(candidates[0], out_dir)
                done.append(f"{out_dir} was missing after an interrupted write; restored the "
                            f"{'complete new' if state == 'new' else 'previous'} release from {candidates[0].name}")
                break
    for _, _, path in leftovers:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path.name} left by an interrupted write")
    for line in done:
        logger.warning("%s", line)
    return done


def _running(pid: str | None) -> bool:
    """Whether the writer `pid` still runs (this process counts as finished: it is starting a new write)."""
    if pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system or filesystem cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def rerender_card(root: str | Path) -> None:
    """Rewrite README.md from the shards and release.json (after editing release.json, say), and the
    checksums that record them."""
    root = Path(root)
    (root / rms.CARD_FILE).write_text(render_card(root), encoding="utf-8")
    write_checksums(root)
