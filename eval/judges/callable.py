"""Callable judges: ``python:MODULE:FUNCTION`` as a judge kind, for rule baselines and custom judges.

The function takes one `JudgeExample` and returns its verdict: ``"safe"``, ``"unsafe"``, None (unparseable)
or a pair ``(verdict, p_unsafe)``. A function that never opens the image sets ``reads_images = False`` on
itself (eval.score then does not require the benchmark's images); ``tasks`` on it limits which tasks the grid
scores it on (default both). Its fingerprint is the spec and the sha256 of the module's source file, so an
edited rule is another judge and reuses none of the old one's predictions.

    python -m eval.score --benchmark salad --kind python:eval.judges.rules:harmful_keywords --out r.json
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

from eval.judges.base import Judge, Prediction
from judging.records import TASKS, JudgeExample
from rms_dataset import SAFE, UNSAFE

PREFIX = "python:"


def is_callable_kind(kind: str) -> bool:
    return isinstance(kind, str) and kind.startswith(PREFIX)


class CallableJudge(Judge):
    name = "python"

    def __init__(self, kind: str):
        module_name, _, function_name = kind[len(PREFIX):].partition(":")
        if not module_name or not function_name:
            raise ValueError(f"judge kind {kind!r}: write python:MODULE:FUNCTION, e.g. python:eval.judges.rules:refusal_phrases")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"judge kind {kind!r}: cannot import {module_name!r} ({error})") from None
        function = getattr(module, function_name, None)
        if not callable(function):
            raise ValueError(f"judge kind {kind!r}: {module_name} has no function {function_name!r}")
        self.kind, self.function = kind, function
        self.reads_images = bool(getattr(function, "reads_images", True))
        self.tasks = tuple(getattr(function, "tasks", TASKS))
        source = inspect.getsourcefile(module)
        self.source_sha256 = hashlib.sha256(open(source, "rb").read()).hexdigest() if source else None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "callable": True, "source_sha256": self.source_sha256,
                "reference": bool(getattr(self.function, "reference", False))}

    @property
    def judge_id(self) -> str:
        return f"{self.kind[len(PREFIX):].replace(':', '-')}-{(self.source_sha256 or 'nosource')[:8]}"

    def score(self, examples: list[JudgeExample]) -> list[Prediction]:
        predictions = []
        for example in examples:
            answer = self.function(example)
            label, p_unsafe = answer if isinstance(answer, tuple) else (answer, None)
            if label not in (SAFE, UNSAFE, None):
                raise ValueError(f"{self.kind} returned {label!r} for {example.source}/{example.source_id}; "
                                 "a callable judge returns 'safe', 'unsafe', None or (verdict, p_unsafe)")
            if p_unsafe is None and label is not None:
                p_unsafe = 1.0 if label == UNSAFE else 0.0
            predictions.append(Prediction(label, p_unsafe=p_unsafe))
        return predictions
