"""The pipeline, as data: the steps in order, the one place that order is written. The executor
(engine/executor.py) runs it and the report lists the funnel in it (`funnel_rows`); adding a step is one class in
its own module and one entry here."""

from __future__ import annotations

from rms_dataset import SAFE, UNSAFE

from .check import CheckResponses
from .ingest import Ingest
from .query import Query
from .respond import Respond
from .rewrite import Rewrite
from .risks import Risks
from .scene import Scene
from .screen import Screen
from .twin import Twin
from .verify import ImageAlone, Verify


def pipeline() -> list:
    """Fresh step instances for one run (steps such as Risks keep per-run state)."""
    return [
        Ingest(),
        Screen(),
        Scene(),
        Risks(),
        ImageAlone(),
        Rewrite(Query(), Twin(), Verify()),
        Respond(SAFE),
        Respond(UNSAFE),
        CheckResponses(),
    ]


def funnel_rows() -> tuple[str, ...]:
    """The funnel's rows in pipeline order: one per step, a loop's own steps before the loop's row."""
    rows: list[str] = []
    for step in pipeline():
        rows += [inner.name for inner in getattr(step, "steps", ())] + [step.name]
    return tuple(rows)
