"""The unified judge-example record every dataset source yields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from rms_dataset import SAFE, UNSAFE

Task = Literal["query", "response"]
QUERY: Task = "query"
RESPONSE: Task = "response"
TASKS: tuple[Task, ...] = (QUERY, RESPONSE)


@dataclass(frozen=True)
class JudgeExample:
    """One item a safety judge sees: (image, text[, response]) and the gold label.

    ``image`` is whatever resolves to pixels: a PIL image, a local file path, or None when the benchmark's
    image could not be found (sources report those; they are never silently dropped).
    ``response`` is None for the query-judge task.
    """

    image: Any
    text: str
    label: str  # "safe" | "unsafe"
    source: str  # registry name of the source, e.g. "siuo"
    source_id: str  # the item's id inside its source
    response: str | None = None
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.label not in (SAFE, UNSAFE):
            raise ValueError(f"{self.source}/{self.source_id}: label must be 'safe' or 'unsafe', got {self.label!r}")

    @property
    def task(self) -> Task:
        return QUERY if self.response is None else RESPONSE


def content_id(*parts: Any, length: int = 12) -> str:
    """A stable item id from the item's content (for benchmarks whose records carry no id): the same
    record gets the same id in a sample and in the full file, wherever it sits in either."""
    blob = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]
