"""Join call caches (one per shard, e.g. one per Slurm array task) into one file.

    python -m modelcalls.cache_merge --into runs/v2/calls.sqlite runs/v2/shard-*/calls.sqlite

Every answer of every source is copied into ``--into`` (created if missing) in one transaction per source.
A key already in the target keeps the target's answer: the key covers everything that determines an answer
(model, prompt, images, sampling settings), so two answers under one key differ only by sampling noise;
their number is reported as ``differing``. The sources are opened read-only and never changed. Merge after
the shards have finished (a source still being written is read as of its last commit).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from modelcalls.cache import CallCache, open_cache_db


@dataclass(frozen=True)
class MergeReport:
    source: str
    answers: int  # answers in the source
    added: int  # new keys copied into the target
    identical: int  # keys already there with the same text
    differing: int  # keys already there with another text (the target's answer is kept)


def merge_caches(target: str | Path, sources: list[str | Path]) -> list[MergeReport]:
    """Copy every answer of ``sources`` into ``target``; returns one report per source."""
    target = Path(target)
    resolved_target = target.resolve()
    for source in sources:
        source = Path(source)
        if not source.is_file():
            raise ValueError(f"{source}: no such cache file")
        if source.resolve() == resolved_target:
            raise ValueError(f"{source}: is the target itself; name another --into file")
    reports = []
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = open_cache_db(target, busy_timeout_s=60.0)
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{target}: not a usable call cache ({error})") from None
    try:
        for source in sources:
            uri = f"{Path(source).resolve().as_uri()}?mode=ro"
            try:
                db.execute("ATTACH DATABASE ? AS source", (uri,))
            except sqlite3.DatabaseError as error:
                raise ValueError(f"{source}: not a usable call cache ({error})") from None
            try:
                try:
                    answers, identical, differing = db.execute(
                        "SELECT COUNT(*), "
                        "COALESCE(SUM(t.key IS NOT NULL AND t.text = s.text), 0), "
                        "COALESCE(SUM(t.key IS NOT NULL AND t.text != s.text), 0) "
                        "FROM source.calls s LEFT JOIN main.calls t ON t.key = s.key"
                    ).fetchone()
                    db.execute("BEGIN IMMEDIATE")
                    added = db.execute("INSERT OR IGNORE INTO main.calls SELECT * FROM source.calls").rowcount
                    db.execute("COMMIT")
                except sqlite3.DatabaseError as error:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise ValueError(f"{source}: not a usable call cache ({error})") from None
            finally:
                db.execute("DETACH DATABASE source")
            reports.append(MergeReport(str(source), answers, added, identical, differing))
    finally:
        db.close()
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelcalls.cache_merge",
        description="Join call caches (one per shard) into one file; a key already in the target keeps its answer.",
    )
    parser.add_argument("sources", nargs="+", metavar="CACHE", help="cache files to copy from (read-only)")
    parser.add_argument("--into", required=True, metavar="CACHE", help="cache file to copy into (created if missing)")
    args = parser.parse_args(argv)
    try:
        reports = merge_caches(args.into, args.sources)
    except (ValueError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for report in reports:
        print(f"{report.source}: {report.answers} answers, {report.added} added, {report.identical} already there, "
              f"{report.differing} differing (kept the target's)")
    with CallCache(args.into) as cache:
        print(f"{args.into}: {len(cache)} answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
