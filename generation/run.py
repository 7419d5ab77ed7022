"""Run the generation pipeline on one config: ingest -> screen -> scene -> risks -> image alone -> (query ->
twin -> verify, rewritten with the verifier's reasons) -> responses -> response checks, each step
checkpointed under --out by a fingerprint of what determines it (a rerun resumes what is unchanged; a
killed run loses nothing), then dedup, split and write the release to OUT/release (validated) and a
gallery of the pairs, the rejected candidates and every reject to OUT/gallery.html.

  python -m generation run generation/configs/sample_smollm2.yaml --out runs/sample
  python -m generation run CONFIG --shard 3/16 --out runs/v2/shard-03   # one slice; join with `merge`

With --shard I/N only the I-th of N deterministic slices of the input is processed (by hash of each input
file's bytes) and its outcome is left in OUT/shard/ for `python -m generation merge`; with --plan (from
`python -m generation plan`) the photos merge would drop as duplicates of another shard's are skipped
before any model call. A rerun that changes nothing (inputs, config, code, what each backend serves, the
outputs) does nothing (generation/engine/run_stamp.py).

One process writes OUT at a time: a second run into the same --out is refused (exit 2, naming the one
running). A run that writes no release removes OUT/release left by an earlier run. Exit 1 when the
release has problems or most model calls failed (the report names the error and the --retry-errors rerun).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from atomic_files import DamagedFile
from generation.engine.call_account import CallAccount
from generation.engine.config import RunConfig, check_run
from generation.engine.executor import Executor, write_shard_outcome
from generation.engine.outputs import check_replaceable_release, locked, remove_retired_leftovers, settle_release
from generation.gallery import write_gallery
from generation.engine import fingerprint as fp
from generation.engine.run_stamp import RunStamp
from generation.release.finalize import BaseRelease, finalize, format_funnel, load_base_release, read_shard
from generation.plan import Plan
from generation.steps.pipeline import pipeline
from typed_config import ConfigError


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return index, count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run YAML (see generation/configs/)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, images, shard outcome, release/)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N", help="process slice I of N (default 0/1)")
    parser.add_argument("--base-release", default=None, metavar="DIR_OR_REPO",
                        help="previous release: its rows are kept; new images and queries are deduplicated against it")
    parser.add_argument("--plan", default=None, metavar="PLAN",
                        help="a plan from `python -m generation plan` (with --shard): skip, before any model call, the "
                             "photos merge would drop as duplicates of another shard's")
    parser.add_argument("--max-images", type=int, default=None, help="override the config's max_images")
    parser.add_argument("--retry-errors", action="store_true",
                        help="on resume, redo the items whose model call failed (they are checkpointed as failures)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(config: RunConfig, out: str | Path, *, shard: tuple[int, int] = (0, 1), base_release: str | None = None,
        backends=None, show_progress: bool | None = None, retry_errors: bool = False, plan: Plan | None = None) -> dict:
    """Process `shard` of the input into `out`; for an unsharded run also write and validate `out/release`.
    Returns the report (funnel, counts, problems). Holds the lock of `out` and of `out/release` throughout
    (`DirectoryBusy` if another process writes them)."""
    out = Path(out)
    release_dir = out / "release"
    with locked(out), locked(release_dir, option="release directory"):
        check_replaceable_release(release_dir, option="release directory")
        remove_retired_leftovers(release_dir)
        steps = pipeline()
        stamp = RunStamp.for_run(config, out, shard, base_release, retry_errors,
                                 [fp.code_digest(*steps), plan.to_json() if plan else None])
        base, recorded, served = BaseRelease(), None, {}

        def done(models: dict) -> bool:  # asked once the backends said what they serve
            nonlocal recorded, base
            served.update(models)
            recorded = stamp.result(models) if stamp else None
            if recorded is None:
                base = load_base_release(base_release)
            return recorded is not None

        executor = Executor(config, out, shard, known_hashes=lambda: base.hashes, backends=backends,
                            show_progress=show_progress, retry_errors=retry_errors, steps=steps, plan=plan)
        outcome = executor.run(done)
        if outcome is None:  # nothing changed since the stamped run: its outputs are on disk as it wrote them
            idle = {"prompt_tokens": 0, "completion_tokens": 0, "model_calls": 0, "cached_calls": 0, "model_calls_by_step": {}}
            return {**recorded, "usage": idle, "removed": [], "unchanged": True}
        report = _finish(outcome, out, release_dir, shard, config, base)
        if stamp:
            stamp.record(served, report)
        return report


def _finish(outcome, out: Path, release_dir: Path, shard: tuple[int, int], config: RunConfig, base: BaseRelease) -> dict:
    """Write the shard outcome and, for an unsharded run, the release (validated) and the gallery; the report."""
    write_shard_outcome(out, outcome, shard, config)
    usage = {"prompt_tokens": outcome.usage.prompt_tokens, "completion_tokens": outcome.usage.completion_tokens,
             "model_calls": outcome.model_calls, "cached_calls": outcome.cached_calls,
             "model_calls_by_step": outcome.model_calls_by_step}
    if shard[1] > 1:
        return {"shard": list(shard), "funnel": outcome.funnel, "pairs": len(outcome.pairs), "usage": usage,
                "calls": outcome.calls.to_json(), "removed": settle_release(release_dir, written=False)}
    path, report = finalize([read_shard(out)], release_dir, config, base=base, stamps=out / "steps")
    report["removed"] = settle_release(release_dir, written=path is not None)
    report["usage"] = usage
    report["calls"] = outcome.calls.to_json()
    report["gallery"] = str(write_gallery(out))
    return report


def print_report(report: dict, retry: str = "its `python -m generation run` with --retry-errors") -> None:
    """The closing report; `retry` is the command that redoes the failed model calls."""
    calls = CallAccount.joined([report.get("calls", {})])
    print(format_funnel(report) if "images_in" in report else json.dumps(report["funnel"]))
    if "images_in" in report:
        print(f"release: {report['release']}  pairs: {report['pairs']} (new: {report['new_pairs']})  "
              f"images in: {report['images_in']}, with pairs: {report['images_released']}, rejected: {report['images_rejected']}")
        if report["pairs"] == 0:
            why = ("Model calls failed: see below." if calls.failed else "A small model rarely writes answers that "
                   "pass the quality gates and its verifier: see docs/generation.md.")
            print(f"NO PAIR KEPT: every candidate was rejected, so no release was written (a release needs at least "
                  f"one row). Every reject and its reason is in {report['rejects_file']}; the funnel above says "
                  f"where they were lost. {why}")
        for problem in report["problems"]:
            print(f"PROBLEM: {problem}")
    if calls.total:
        print(f"model answers: {calls.accepted} accepted, {sum(calls.rejected.values())} rejected"
              + "".join(f", {cause} {count}" for cause, count in calls.rejected.items())
              + f"; failed calls: {sum(calls.failed.values())}"
              + "".join(f", {kind} {count}" for kind, count in calls.failed.items()))
    if calls.failed:
        lead = "MOST MODEL CALLS FAILED" if calls.mostly_failed else "SOME MODEL CALLS FAILED"
        print(f"{lead}: their items were rejected as 'call failed', not for their answers. First error: "
              f"{calls.first_error}")
        print(f"fix the cause (server, base_url, key), then redo only the failed calls: {retry}")
    if "usage" in report:
        u = report["usage"]
        print(f"tokens: {u['prompt_tokens']} prompt + {u['completion_tokens']} completion; "
              f"{u['model_calls']} model calls, {u['cached_calls']} answers from the cache")
    if report.get("unchanged"):
        print("note: nothing changed since the last run (inputs, config, code, models' weights, outputs): nothing redone")
    for line in report.get("removed", []):
        print(f"note: {line}")
    if report.get("gallery"):
        print(f"gallery (pairs, rejected candidates, every reject): {report['gallery']}")


def exit_code(report: dict) -> int:
    """1 when the release has problems or most model calls failed (the run did not do its job), else 0."""
    return 1 if report.get("problems") or CallAccount.joined([report.get("calls", {})]).mostly_failed else 0


def main(args: argparse.Namespace) -> int:
    try:
        config = RunConfig.from_yaml(args.config)
        if args.max_images is not None:
            config = config.with_overrides("--max-images", max_images=args.max_images)
        check_run(config, args.out, base_release=args.base_release, source=args.config)
        plan = Plan.read(args.plan) if args.plan else None
    except ConfigError as error:  # every bad value or path, before any model is loaded
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        report = run(config, args.out, shard=args.shard, base_release=args.base_release,
                     show_progress=False if args.no_progress else None, retry_errors=args.retry_errors, plan=plan)
    except ConfigError as error:  # found as the run starts (replicas that disagree, --out in use, a bad base release)
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DamagedFile as error:  # a cache or shard file of an earlier run that cannot be trusted
        print(f"error: {error}", file=sys.stderr)
        return 1
    shard = [] if args.shard == (0, 1) else ["--shard", f"{args.shard[0]}/{args.shard[1]}"]
    base = (["--base-release", args.base_release] if args.base_release else []) + (["--plan", args.plan] if args.plan else [])
    print_report(report, retry=shlex.join(["python", "-m", "generation", "run", args.config, "--out", args.out, *shard,
                                           *base, "--retry-errors"]))
    return exit_code(report)
