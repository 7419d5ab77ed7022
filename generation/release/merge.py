"""Join the outputs of sharded runs into one release: cross-shard image dedup, taxonomy, query dedup,
category cap, split by image, write + validate.

  python -m generation merge runs/v2/shard-* --out releases/v2 [--base-release releases/v1]

The run config is read from the first shard. All shards must have used the same config, the same weights
for each role (the loaded Hub commit or local weights' fingerprint, or the weights its servers name) and the
same ingest normalisation. --out may be missing, empty or a release (replaced whole); anything else is
refused (exit 2), as is a shard file truncated or changed since its run wrote it (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from atomic_files import DamagedFile
from generation.engine.call_account import CallAccount
from generation.engine.config import RunConfig, check_base_release
from generation.engine.outputs import check_replaceable_release, locked, remove_retired_leftovers, settle_release
from generation.release.finalize import finalize, load_base_release, read_shard
from generation.run import exit_code, print_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR", help="--out directories of `run --shard I/N`")
    parser.add_argument("--out", required=True,
                        help="release directory to write (a release there is replaced; anything else is refused)")
    parser.add_argument("--base-release", default=None, metavar="DIR_OR_REPO", help="previous release to extend")


def merge(shard_dirs: list[str], out: str, base_release: str | None = None) -> dict:
    """Join the shards into the release `out`, holding its lock; `out` may only be missing, empty or a
    release (anything else is refused with a `ConfigError`)."""
    with locked(out):
        check_replaceable_release(out)
        remove_retired_leftovers(out)
        shards = [read_shard(path) for path in shard_dirs]
        configs = [shard.summary["config"] for shard in shards]
        if any(c != configs[0] for c in configs[1:]):
            raise ValueError("the shards were produced with different run configs; merge only shards of one run")
        seen = [tuple(shard.summary["shard"]) for shard in shards]
        if len(set(seen)) != len(seen):
            raise ValueError(f"the same shard appears twice: {seen}")
        _check_same_producers(shards, shard_dirs)
        config = RunConfig.from_dict(configs[0], where=f"{shard_dirs[0]}/shard/summary.json: config")
        total = seen[0][1]
        if sorted(index for index, _ in seen) != list(range(total)):
            print(f"WARNING: merging {len(seen)} of {total} shards ({sorted(i for i, _ in seen)}); the release is partial",
                  file=sys.stderr)
        path, report = finalize(shards, out, config, base=load_base_release(base_release))
        report["removed"] = settle_release(Path(out), written=path is not None)
        report["calls"] = CallAccount.joined([shard.summary.get("calls", {}) for shard in shards]).to_json()
        return report


def _check_same_producers(shards, shard_dirs: list[str]) -> None:
    """One release, one producer: every shard's answers must come from the same weights for each role
    (a Hub model whose ``main`` moved between shard jobs loads other weights under the same name) and its
    photos from the same normalisation code. Otherwise the release would mix them under one provenance."""
    first = shards[0].summary
    for shard, path in zip(shards[1:], shard_dirs[1:]):
        summary = shard.summary
        models, expected = summary.get("models", {}), first.get("models", {})
        for role in sorted(set(models) | set(expected)):
            if models.get(role) != expected.get(role):
                raise ValueError(
                    f"{path}: its {role} answers came from {models.get(role)}, those of {shard_dirs[0]} from "
                    f"{expected.get(role)}; one release must come from one set of weights: pin them (a Hub "
                    "model's `revision:` to one commit, one checkpoint on every server) and rerun the odd shards "
                    "(their other steps are reused)")
        if summary.get("normalise_version") != first.get("normalise_version"):
            raise ValueError(
                f"{path}: its photos were normalised by ingest version {summary.get('normalise_version')}, those of "
                f"{shard_dirs[0]} by version {first.get('normalise_version')}; rerun the older shards with this "
                "version of the toolkit")


def main(args: argparse.Namespace) -> int:
    try:
        check_base_release(args.base_release)
        report = merge(args.shard_dirs, args.out, args.base_release)
    except DamagedFile as error:  # a shard file truncated or edited since its run wrote it
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as error:  # ConfigError included
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report, retry="each shard's `python -m generation run ... --shard I/N` with --retry-errors, then merge again")
    return exit_code(report)
