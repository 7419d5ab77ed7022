"""Typed records passed between the pipeline's steps (and written to their JSONL checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Stages: a reject names the stage that rejected it (the order of the steps is steps/pipeline.py's).
INGEST = "ingest"
SCREEN = "screen"
SCENE = "scene"
RISKS = "risks"
QUERY = "query"
VERIFY = "verify"
RESPOND = "respond"
DEDUP = "dedup"
CAP = "category_cap"


@dataclass(frozen=True)
class ImageRecord:
    """An ingested, normalised photo (its JPEG bytes live in the run's `images/<image_id>.jpg`)."""

    image_id: str
    filename: str
    source: str
    license: str
    attribution: str
    description: str
    dhash: str  # 64-bit difference hash, 16 hex chars
    width: int
    height: int
    notes: tuple[str, ...] = ()  # normalisations applied (e.g. "exif_transpose", "cmyk->rgb")

    def to_json(self) -> dict[str, Any]:
        # its fields are strings, ints and a tuple of strings: a shallow copy (asdict deep-copies, 10x slower)
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "notes": list(self.notes)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ImageRecord":
        return cls(**{**data, "notes": tuple(data.get("notes", ()))})


@dataclass(frozen=True)
class Reject:
    """Something the pipeline did not keep, and why. Every input image and every candidate pair that is not
    in the release ends up as exactly one of these in `rejects.jsonl`."""

    kind: str  # "image" | "pair"
    stage: str
    reason: str
    item: str  # file name (images) or pair id / candidate key (pairs)
    image_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Reject":
        return cls(**data)


@dataclass(frozen=True)
class Risk:
    """A hidden risk the scene affords, as proposed by the generator (free-form labels)."""

    category: str
    subcategory: str
    rationale: str
    intention: str = ""  # the innocent-sounding intention that, combined with the scene, is risky


@dataclass
class Candidate:
    """One risk of one image on its way to becoming a pair (query, verification, responses)."""

    key: str  # "<image_id>:<risk index>"
    image_id: str
    risk: Risk
    text: str = ""
    safe_twin_text: str = ""
    checks: dict[str, dict] = field(default_factory=dict)  # verifier answers: check -> {verdict, reason, score?}
    verification: dict[str, Any] = field(default_factory=dict)  # what the row records (see verify.py)
    attempts: int = 0
    feedback: list[str] = field(default_factory=list)
    responses: dict[str, str] = field(default_factory=dict)  # label -> response text
