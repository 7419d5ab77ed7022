"""The judge interface every kind of judge implements, and the prediction record it returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from judging.format import VERDICT_LABELS
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

    ``describe()`` is the judge's fingerprint and provenance: everything that determines its outputs
    (base model + revision or weights fingerprint, adapter hash, prompt format + version, mode, decoding
    parameters, label tokens), and nothing that does not (batch size). ``judge_id`` is a readable name
    plus a short hash of it. ``rendered_prompt(example)`` is the exact prompt text the judge sends for an
    example; together with the judge id, the image hash, task and labels it keys cached predictions
    (`eval.predictions.prediction_key`).
    """

    name: str = "judge"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def rendered_prompt(self, example: JudgeExample) -> str:
        """The judge's prompt for ``example`` (default: its format's messages as JSON, else the texts)."""
        judge_format = getattr(self, "format", None)
        if judge_format is not None:
            content: Any = judge_format.build_messages(example)
        else:
            content = {"text": example.text, "response": example.response}
        return json.dumps(content, sort_keys=True, ensure_ascii=False)

    @property
    def labels(self) -> tuple[str, ...]:
        judge_format = getattr(self, "format", None)
        return tuple(judge_format.labels) if judge_format is not None else VERDICT_LABELS

    @property
    def judge_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.describe(), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"
