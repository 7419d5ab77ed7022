"""A grid spread over independent jobs (a Slurm array, several machines): ``python -m eval.grid GRID.yaml
--out DIR --cell I/N`` runs job I of N.

The unit of work is a grid *row*, one judge with all of its cells, never a single cell: a trained run is
trained once and its judge loaded once for every benchmark it is scored on, so two jobs never train the same
run nor race on its judge folder. Rows are numbered in one fixed order, the reference judges first (in
``sanity_judges`` order) then `eval.grid.grid_rows` (trained and zero-shot runs, then the existing judges);
row ``k`` belongs to job ``k % N``. Every job writes into the same DIR (shared storage), each row's cells and
prediction-cache files under names no other row uses; the leaderboard over DIR then merges them as if one
job had run the grid."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class JobShare:
    """Job ``index`` of ``count`` (0-based: a Slurm array's ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""

    index: int
    count: int

    def takes(self, unit: int) -> bool:
        return unit % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_job_share(text: str) -> JobShare:
    """``I/N`` with 0 <= I < N (an argparse type: a bad value is a usage error, exit 2)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N (e.g. 0/4: the first of 4 jobs)")
    return JobShare(int(match[1]), int(match[2]))


def share_of(references: Sequence[str], rows: Sequence[T],
             share: JobShare | None) -> tuple[list[str], list[T]]:
    """(reference kinds, rows) this job runs: all of them without a share."""
    if share is None:
        return list(references), list(rows)
    return ([kind for unit, kind in enumerate(references) if share.takes(unit)],
            [row for unit, row in enumerate(rows, start=len(references)) if share.takes(unit)])
