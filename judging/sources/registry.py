"""The one registry of judge-example sources. Recipes train on sources; eval scores on sources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from judging.records import JudgeExample, Task

SOURCES: dict[str, type[Source]] = {}


class Source:
    """A dataset that yields `JudgeExample`s.

    Subclasses set ``name``, ``tasks`` (which judge tasks the labels support), ``single_class`` (None, or
    "unsafe"/"safe" when every item has that label: scored with a detection rate, never F1) and implement
    ``examples(split)``. Options (annotation path, image folder, Hub id, revision) arrive as keyword
    arguments to ``__init__``.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[Task, ...]]
    single_class: ClassVar[str | None] = None
    complementarity: ClassVar[bool] = False  # True: the risk is only in the image-text pair, not in either alone
    splits: ClassVar[tuple[str, ...]] = ("test",)

    def examples(self, split: str = "test", task: Task = "query") -> Iterator[JudgeExample]:
        raise NotImplementedError

    @classmethod
    def key_parts(cls, options: dict) -> list[str]:
        """Extra parts of a cell key that the options alone do not show (e.g. the font FigStep renders in)."""
        return []


def register_source(cls: type[Source]) -> type[Source]:
    if cls.name in SOURCES and SOURCES[cls.name] is not cls:
        raise ValueError(f"source name {cls.name!r} registered twice")
    SOURCES[cls.name] = cls
    return cls


def get_source(name: str, **options) -> Source:
    import judging.sources  # noqa: F401  (fills the registry)

    if name not in SOURCES:
        known = ", ".join(sorted(SOURCES)) or "(none)"
        raise KeyError(f"unknown dataset source {name!r}; known sources: {known}")
    return SOURCES[name](**options)
