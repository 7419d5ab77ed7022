"""Plan a sharded run: find, before any model call, the photos that `merge` would drop as duplicates of a photo of another shard.

  python -m generation plan CONFIG --shards 16 --out runs/v2/plan.json
  python -m generation run CONFIG --shard 3/16 --plan runs/v2/plan.json --out runs/v2/shard-03

The plan reads and normalises every input once, splits them as `run --shard I/N` does, dedups each shard's
photos as its ingest does (input order, base release included), then takes merge's own decision
(`finalize.cross_shard_duplicates`: shards by index, photos by id, a photo within the near-duplicate
distance of one kept before is dropped). A shard job given the plan rejects those photos at ingest
("duplicate of X in another shard (found by the plan)") and asks no model about them; merge still checks
every photo, so a plan made before inputs were added only misses what merge then finds. Within a shard the
dropped photo still counts for ingest's own dedup, so every other decision is the one without a plan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from atomic_files import write_atomic
from generation.engine import fingerprint as fp
from generation.engine.config import RunConfig, check_run
from generation.engine.records import ImageRecord, Reject
from generation.engine.sharding import shard_of
from generation.release.finalize import cross_shard_duplicates, load_base_release
from generation.steps.ingest import Ingest, Ingestor
from typed_config import ConfigError


def plan_key(config: RunConfig, known_hashes: list[tuple[str, int]]) -> str:
    """What a plan's decisions depend on besides the input files: the input, max_images, the ingest
    options and the base release's photos."""
    return fp.digest({"input": config.resolved_input(), "max_images": config.max_images,
                      "ingest": Ingest().params(config, known_hashes)})


@dataclass(frozen=True)
class Plan:
    shards: int
    key: str
    drop: dict[int, dict[str, str]]  # shard index -> image id -> what it duplicates

    def to_json(self) -> dict:
        return {"shards": self.shards, "key": self.key, "drop": {str(i): d for i, d in sorted(self.drop.items())}}

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(int(data["shards"]), str(data["key"]), {int(i): dict(d) for i, d in data["drop"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"--plan {path}: not a plan written by `python -m generation plan` ({error})") from None

    def for_shard(self, config: RunConfig, known_hashes: list[tuple[str, int]], shard: tuple[int, int],
                  where: str = "--plan") -> dict[str, str]:
        """The photos shard `shard` drops (image id -> what it duplicates); a ConfigError when the plan was
        made for another split or another input, ingest options or base release."""
        if shard[1] != self.shards:
            raise ConfigError(f"{where}: made for {self.shards} shards, this run is shard {shard[0]}/{shard[1]}; "
                              f"make a plan with --shards {shard[1]}")
        if plan_key(config, known_hashes) != self.key:
            raise ConfigError(f"{where}: made for another input, max_images, ingest options or base release; "
                              "make the plan again with this config")
        return self.drop.get(shard[0], {})


def make_plan(config: RunConfig, shards: int, known_hashes: list[tuple[str, int]] = ()) -> Plan:
    """Normalise every input once, dedup each shard as its ingest does, then decide as merge does."""
    known_hashes = list(known_hashes)
    ingestors = [Ingestor(config.ingest_options(), known_hashes) for _ in range(shards)]
    kept: list[list[ImageRecord]] = [[] for _ in range(shards)]
    for raw in Ingest().inputs(config):
        content = hashlib.sha256(raw.data).hexdigest() if raw.data is not None else raw.name
        index = shard_of(content, shards)
        outcome = ingestors[index].add(raw)
        if not isinstance(outcome, Reject):
            kept[index].append(outcome[0])
    owners = cross_shard_duplicates(kept, config.ingest_options().near_duplicate_distance, known_hashes)
    drop: dict[int, dict[str, str]] = {}
    for (index, image_id), owner in sorted(owners.items()):
        drop.setdefault(index, {})[image_id] = owner
    return Plan(shards, plan_key(config, known_hashes), drop)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run YAML (the one the shard jobs run)")
    parser.add_argument("--shards", type=int, required=True, metavar="N", help="the N of the shard jobs' --shard I/N")
    parser.add_argument("--out", required=True, help="plan file to write (JSON), given to each shard job as --plan")
    parser.add_argument("--base-release", default=None, metavar="DIR_OR_REPO", help="the shard jobs' --base-release")
    parser.add_argument("--max-images", type=int, default=None, help="override the config's max_images (as the jobs do)")


def main(args: argparse.Namespace) -> int:
    try:
        if args.shards < 1:
            raise ConfigError(f"--shards must be at least 1, got {args.shards}")
        config = RunConfig.from_yaml(args.config)
        if args.max_images is not None:
            config = config.with_overrides("--max-images", max_images=args.max_images)
        check_run(config, Path(args.out).parent, base_release=args.base_release, source=args.config)
        plan = make_plan(config, args.shards, load_base_release(args.base_release).hashes)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    write_atomic(Path(args.out), json.dumps(plan.to_json(), indent=1, sort_keys=True).encode())
    dropped = sum(len(d) for d in plan.drop.values())
    print(f"plan: {dropped} photo(s) near-duplicate a photo of another shard and will be skipped before any model "
          f"call; give each shard job --plan {args.out}")
    return 0
