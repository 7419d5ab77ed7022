"""Join the outputs of sharded runs into one release: cross-shard image dedup, taxonomy, query dedup,
category cap, split by image, write + validate.

  python -m generation merge runs/v2/shard-* --out releases/v2 [--base-release releases/v1]

The run config is read from the first shard (all shards must have used the same config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generation.run import print_report
from generation.steps.config import RunConfig, check_base_release
from generation.steps.finalize import finalize, load_base_release, read_shard
from typed_config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shard_dirs", nargs="+", metavar="SHARD_DIR", help="--out directories of `run --shard I/N`")
    parser.add_argument("--out", required=True, help="release directory to write (replaced if it exists)")
    parser.add_argument("--base-release", default=None, metavar="DIR_OR_REPO", help="previous release to extend")


def merge(shard_dirs: list[str], out: str, base_release: str | None = None) -> dict:
    shards = [read_shard(path) for path in shard_dirs]
    configs = [shard.summary["config"] for shard in shards]
    if any(c != configs[0] for c in configs[1:]):
        raise ValueError("the shards were produced with different run configs; merge only shards of one run")
    seen = [tuple(shard.summary["shard"]) for shard in shards]
    if len(set(seen)) != len(seen):
        raise ValueError(f"the same shard appears twice: {seen}")
    config = RunConfig.from_dict(configs[0], where=f"{shard_dirs[0]}/shard/summary.json: config")
    total = seen[0][1]
    if sorted(index for index, _ in seen) != list(range(total)):
        print(f"WARNING: merging {len(seen)} of {total} shards ({sorted(i for i, _ in seen)}); the release is partial",
              file=sys.stderr)
    _, report = finalize(shards, out, config, base=load_base_release(base_release))
    return report


def main(args: argparse.Namespace) -> int:
    try:
        check_base_release(args.base_release)
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise ConfigError(f"--out {args.out}: is a file; give a directory for the release")
        report = merge(args.shard_dirs, args.out, args.base_release)
    except (FileNotFoundError, ValueError) as error:  # ConfigError included
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report)
    return 1 if report["problems"] else 0
