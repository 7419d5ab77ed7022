"""What became of a run's model calls, for its closing report: answers accepted, answers rejected (by a
quality gate, or unparseable) and calls that failed (no answer: a connection refused, an HTTP 401), told
apart because their fixes differ (a better model or prompt, versus a server, URL or key)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from generation.steps.gates import gate_of
from typing import Any

FAILED_CALL = "call failed"


@dataclass
class CallAccount:
    """What became of the answers the model steps used: accepted, rejected (by a gate, or unparseable) or
    never received (the call failed: a connection refused, an HTTP error such as 401). Counted per answer,
    checkpointed ones included, so a rerun after an outage still says why its items were lost."""

    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)  # cause -> answers (gate:<name>, unparseable)
    failed: Counter = field(default_factory=Counter)  # kind of failure (HTTP 401, connection error, ...) -> calls
    first_error: str = ""  # the first failed call's error, verbatim (backends redact secrets from it)

    def count(self, value: dict[str, Any]) -> None:
        if "error" not in value:
            self.accepted += 1
            return
        cause = cause_of(value["error"])
        if cause != FAILED_CALL:
            self.rejected[cause] += 1
            return
        self.failed[failure_kind(value["error"])] += 1
        self.first_error = self.first_error or value["error"]

    @property
    def total(self) -> int:
        return self.accepted + sum(self.rejected.values()) + sum(self.failed.values())

    @property
    def mostly_failed(self) -> bool:
        return 2 * sum(self.failed.values()) > self.total

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": dict(sorted(self.rejected.items())),
                "failed": dict(sorted(self.failed.items())), "first_error": self.first_error}

    @classmethod
    def joined(cls, accounts: list[dict[str, Any]]) -> CallAccount:
        """The accounts of several shards (their summaries' ``calls``) as one."""
        total = cls()
        for account in accounts:
            total.accepted += account.get("accepted", 0)
            total.rejected.update(account.get("rejected", {}))
            total.failed.update(account.get("failed", {}))
            total.first_error = total.first_error or account.get("first_error", "")
        return total


def failure_kind(error: str) -> str:
    """A failed call's kind for counting: the HTTP status, a connection error or a timeout, else the
    exception's name."""
    found = re.search(r"HTTP \d{3}|connection error|timed out|timeout", error)
    return found.group(0) if found else error.split(":")[0]


def cause_of(error: str) -> str:
    """A short label for a failed call, counted in the funnel: the gate that refused the answer, an
    unparseable answer, or a failed call."""
    gate = gate_of(error)
    if gate:
        return f"gate:{gate}"
    return "unparseable" if "ParseError" in error else FAILED_CALL
