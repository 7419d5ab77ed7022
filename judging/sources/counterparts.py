"""Counterparts that give an all-unsafe benchmark its other class, so a judge is scored on both.

A benchmark where every item is unsafe (SIUO, VLSBench, FigStep) rewards a judge that says "unsafe" to
everything: its detection rate is 1. Such a benchmark is therefore scored together with benign items of the
same form (a real photo with a harmless request; a typographic image of a harmless statement), and the
cell's value is the balanced accuracy over both (docs/eval.md, "The dataset score").

``vlguard`` is the named benign set for real-photo benchmarks: VLGuard's test "safe-safe" turns (a safe
image with its ``safe_instruction``; 554 of the 558 by default, see below). They join the benchmark's cell with ``source_id``
``benign:vlguard:<id>`` and ``meta["counterpart"] = "vlguard"``; their images are VLGuard's
(``benign_options: {image_root: ...}`` or ``{hub_dataset: ys-zong/VLGuard}``), missing ones reported like
the benchmark's own. ``benign_options`` are VLGuard's options (``annotations``, ``image_root``,
``hub_dataset``, ``revision``, ``drop_train_overlap``). ``drop_train_overlap`` defaults to true here: the
4 safe test images that are also VLGuard train images are left out for every judge (554 items remain), so
a judge trained on VLGuard has seen none of the benign items and every row is scored on the same ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import zip_longest
from typing import Any

from judging.records import JudgeExample
from judging.sources.benchmark_files import BenchmarkReport
from rms_dataset import SAFE

NONE = "none"
VLGUARD = "vlguard"


def benign_key_parts(options: dict[str, Any]) -> list[str]:
    """``["vlguard-rev=<commit>"]`` when a cell's VLGuard counterpart items come from a fetched copy."""
    from judging.sources.fetched import fetched_key_parts

    if options.get("benign") != VLGUARD:
        return []
    return [f"{VLGUARD}-{part}" for part in fetched_key_parts(VLGUARD, dict(options.get("benign_options") or {}))]


def vlguard_benign(source: str, report: BenchmarkReport, options: dict[str, Any] | None) -> Iterator[JudgeExample]:
    """VLGuard's test safe-image + safe-instruction items, relabelled as part of ``source``'s cell; their
    image counts and exclusions are added to ``report``."""
    from judging.sources.vlguard import VLGuard

    benign = VLGuard(**{"drop_train_overlap": True, **dict(options or {})})
    for example in benign.examples("test", "query"):
        if example.label != SAFE:
            continue
        meta = {**example.meta, "counterpart": VLGUARD}
        report.n_examples += 1
        if example.image is None:
            report.missing_images.append(example.meta.get("missing_image", "?"))
        else:
            report.n_images_found += 1
        yield replace(example, source=source, source_id=f"benign:{VLGUARD}:{example.source_id}", meta=meta)
    for reason, count in benign.report.excluded.items():
        if reason != "train overlap":
            report.excluded[f"{VLGUARD} {reason}"] += count
    left_out = sum(image_safe for _, image_safe in benign.left_out)  # items, not records: safe images only
    if left_out:
        report.excluded[f"{VLGUARD} train overlap"] += left_out
    report.notes.extend(f"{VLGUARD} (benign counterpart): {note}" for note in benign.report.notes)


def interleave(first: Iterable[JudgeExample], second: Iterable[JudgeExample]) -> Iterator[JudgeExample]:
    """The two classes' items alternately (then the rest of the longer one), so a benchmark's first N items
    (a suite ``limit``) hold both classes."""
    sentinel = object()
    for pair in zip_longest(first, second, fillvalue=sentinel):
        yield from (item for item in pair if item is not sentinel)


def check_choice(source: str, option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{source}: {option}={value!r}; choose one of {list(choices)} "
                         f"({NONE!r} scores the benchmark alone, as a detection rate that is not in the dataset score)")
    return value
