"""Write a release directory: parquet shards per config/split, provenance files and the rendered card.

The layout is the one `rms_dataset` documents and the Hub receives unchanged (`is_declared` says whether a
path belongs to it; `publish` uploads nothing else).

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
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import pyarrow as pa
import yaml
from datasets.table import InMemoryTable

import rms_dataset as rms
from generation.card import RELEASE_INFO, ReleaseInfo, render_card

ROWS_PER_SHARD = 5_000
PROVENANCE_FILES = ("taxonomy.json", "taxonomy.png", "pipeline_config.yaml", "rejects.jsonl")
TOP_LEVEL_FILES = frozenset({rms.CARD_FILE, RELEASE_INFO, *PROVENANCE_FILES})


def is_declared(path_in_release: str) -> bool:
    """Whether a POSIX path inside a release belongs to the layout: the card, release.json, the provenance
    files, or ``<config>/<split>-NNNNN-of-NNNNN.parquet`` of a known config."""
    parts = path_in_release.split("/")
    if len(parts) == 1:
        return parts[0] in TOP_LEVEL_FILES
    return len(parts) == 2 and parts[0] in rms.CONFIG_NAMES and rms.SHARD_PATTERN.match(parts[1]) is not None


@contextlib.contextmanager
def _quiet_progress():
    enabled = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            datasets.utils.logging.enable_progress_bar()


def _dataset(rows: Sequence[dict], features: datasets.Features) -> datasets.Dataset:
    """The rows as a Dataset (what `Dataset.from_list` builds, the same parquet bytes) without its content
    fingerprint: hashing every row, image bytes included, cost more than writing the shard."""
    table = pa.Table.from_pylist([features.encode_example(row) for row in rows], schema=features.arrow_schema)
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=features), fingerprint="rms-release-shard")


def _check_rows(config: str, split: str, rows: Sequence[dict]) -> None:
    expected = set(rms.FEATURES[config])
    for index, row in enumerate(rows):
        missing, extra = expected - set(row), set(row) - expected
        if missing or extra:
            raise ValueError(
                f"{config}/{split} row {index} (id={row.get('id')!r}): "
                f"missing fields {sorted(missing)}, unexpected fields {sorted(extra)}; see rms_dataset.FEATURES"
            )


def _write_shards(directory: Path, config: str, split: str, rows: Sequence[dict]) -> None:
    rows = sorted(rows, key=lambda row: row["id"])
    total = max(1, -(-len(rows) // ROWS_PER_SHARD))
    (directory / config).mkdir(parents=True, exist_ok=True)
    for index in range(total):
        chunk = rows[index * ROWS_PER_SHARD : (index + 1) * ROWS_PER_SHARD]
        path = directory / config / rms.shard_name(split, index, total)
        with _quiet_progress():
            _dataset(chunk, rms.FEATURES[config]).to_parquet(str(path))


def write_release(
    out_dir: str | Path,
    rows: Mapping[str, Mapping[str, Sequence[dict]]],
    *,
    taxonomy: dict | None = None,
    pipeline_config: dict | None = None,
    rejects: Sequence[dict] | None = None,
    pretty_name: str | None = None,
    version: str = "0.0.0",
    repo_id: str | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `rows[config][split]` (dicts matching `rms_dataset.FEATURES[config]`) as a release.

    Images are `{"bytes": ..., "path": name}` dicts (or PIL images). Every config must be present; a split
    may be empty. Returns the release directory.
    """
    out_dir = Path(out_dir)
    undeclared = sorted(name for name in (extra_files or {}) if not is_declared(name))
    if undeclared:
        raise ValueError(f"write_release: extra file(s) {undeclared} are not part of the release layout "
                         f"(top-level files: {', '.join(sorted(TOP_LEVEL_FILES))})")
    recover_release(out_dir)
    for config in rms.CONFIG_NAMES:
        if not any(rows.get(config, {}).values()):
            raise ValueError(
                f"write_release: config '{config}' has no rows; a release needs at least one row per config "
                "(an empty split is left out, an empty config cannot be loaded)"
            )
    rows = {config: {split: r for split, r in rows[config].items() if r} for config in rms.CONFIG_NAMES}
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; choose another directory or pass overwrite=True")
    for config in rms.CONFIG_NAMES:
        for split, split_rows in rows[config].items():
            _check_rows(config, split, split_rows)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    try:
        for config in rms.CONFIG_NAMES:
            for split, split_rows in rows[config].items():
                _write_shards(staging, config, split, split_rows)
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
        complete = staging.with_name(staging.name.replace(".tmp-", ".new-", 1))
        os.replace(staging, complete)  # from here on a recovery may promote it: it is a whole release
        staging = complete
        _swap_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    """Repair what an interrupted write left next to `out_dir` and return what was done (also printed).

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
        print(f"note: {line}", file=sys.stderr)
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
    """Rewrite README.md from the shards and release.json (after editing release.json, say)."""
    root = Path(root)
    (root / rms.CARD_FILE).write_text(render_card(root), encoding="utf-8")
