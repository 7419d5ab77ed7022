"""The judge interface every kind of judge implements, and the prediction record it returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from judging.records import JudgeExample


@dataclass(frozen=True)
class Prediction:
    """One judge output for one item.

    ``label`` is "safe"/"unsafe", or None when the judge's output could not be parsed (counted as
    unparseable, never dropped). ``p_unsafe`` is set by judges that read label-token probabilities.
    ``raw_text`` is the generated text for generative judges. ``extras`` holds judge-specific details
    (guard category codes, the first generated token, ...); it must be JSON-serialisable.
    """

    label: str | None
    p_unsafe: float | None = None
    raw_text: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def parsed(self) -> bool:
        return self.label is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            label=data.get("label"),
            p_unsafe=data.get("p_unsafe"),
            raw_text=data.get("raw_text"),
            extras=dict(data.get("extras") or {}),
        )


class Judge:
    """A safety judge: ``score(examples)`` returns one `Prediction` per example, in the same order.

    ``describe()`` is the judge's provenance (base model, adapter, scoring path, prompt format, ...);
    ``judge_id`` is a readable name plus a short hash of that description, used to key cached predictions.
    """

    name: str = "judge"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def judge_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.describe(), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"
