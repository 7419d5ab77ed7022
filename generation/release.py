"""Write a release directory: parquet shards per config/split, provenance files and the rendered card.

The layout is the one `rms_dataset` documents and the Hub receives unchanged. Writing is atomic: the
release is built in a temporary sibling directory and renamed into place, so a crash never leaves half a
release and an existing release is only replaced when `overwrite=True` (and only after the new one is
complete).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import datasets
import yaml

import rms_dataset as rms
from generation.card import ReleaseInfo, render_card

ROWS_PER_SHARD = 5_000


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
    return datasets.Dataset.from_list(list(rows), features=features)


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
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
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
        _swap_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename the finished release into place; an old release is moved aside first and removed last."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    retired = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, retired)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(retired, out_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def rerender_card(root: str | Path) -> None:
    """Rewrite README.md from the shards and release.json (after editing release.json, say)."""
    root = Path(root)
    (root / rms.CARD_FILE).write_text(render_card(root), encoding="utf-8")
