"""``ReplicaPool``: several servers of one model (vLLM replicas) behind one backend.

Each request goes to the replica in service with the fewest requests outstanding (ties: the one picked
longest ago). A replica whose connections fail or time out ``eject_after`` times in a row is taken out of
service for ``eject_for_s`` (doubled each time it fails again after coming back, up to ``max_eject_for_s``);
when that time is over it is tried again, and one answer puts it fully back. HTTP errors (429, 5xx) do not
count: such a replica is alive and its answer is handled by the retry policy. When every replica is out,
the one due back first is used, so that a request still fails only through its own retries.

``stats()`` gives the counts a run prints (per replica: requests, answers, connection failures, times taken
out, in service or not) and ``failovers`` the requests re-sent at once to another replica.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from itertools import count

log = logging.getLogger(__name__)


@dataclass
class Replica:
    url: str
    outstanding: int = 0
    requests: int = 0
    answered: int = 0
    failures: int = 0  # connection failures and timeouts, in all
    failures_in_a_row: int = 0
    ejections: int = 0
    out_until: float = 0.0  # time.monotonic() before which the replica is out of service
    last_pick: int = 0

    def in_service(self, now: float) -> bool:
        return now >= self.out_until


class ReplicaPool:
    def __init__(self, urls: list[str], *, eject_after: int = 3, eject_for_s: float = 10.0,
                 max_eject_for_s: float = 120.0, clock=time.monotonic):
        if not urls:
            raise ValueError("ReplicaPool needs at least one URL")
        if len(set(urls)) != len(urls):
            raise ValueError(f"base_url lists a replica twice: {urls}")
        if eject_after < 1 or eject_for_s < 0 or max_eject_for_s < eject_for_s:
            raise ValueError("ReplicaPool: eject_after >= 1 and 0 <= eject_for_s <= max_eject_for_s")
        self.replicas = [Replica(url) for url in urls]
        self.eject_after = eject_after
        self.eject_for_s = eject_for_s
        self.max_eject_for_s = max_eject_for_s
        self.failovers = 0
        self._clock = clock
        self._picks = count(1)

    def __len__(self) -> int:
        return len(self.replicas)

    def acquire(self, avoid: set[str] = frozenset()) -> Replica:
        """The replica for the next request (its outstanding count is raised until ``release``); replicas
        whose URL is in ``avoid`` (those that just failed this request) only when no other is in service."""
        if len(self.replicas) == 1:  # the only replica, in service or not (what the rules below give)
            replica = self.replicas[0]
            replica.last_pick = next(self._picks)
            replica.outstanding += 1
            replica.requests += 1
            return replica
        now = self._clock()
        live = [r for r in self.replicas if r.in_service(now) and r.url not in avoid]
        live = live or [r for r in self.replicas if r.in_service(now)]
        if live:
            replica = min(live, key=lambda r: (r.outstanding, r.last_pick))
        else:
            replica = min(self.replicas, key=lambda r: r.out_until)
        replica.last_pick = next(self._picks)
        replica.outstanding += 1
        replica.requests += 1
        return replica

    def release(self, replica: Replica, *, reachable: bool) -> None:
        """End a request: ``reachable=False`` for a connection failure or a timeout, else True (any HTTP
        answer, error statuses included)."""
        replica.outstanding -= 1
        if reachable:
            replica.answered += 1
            if replica.failures_in_a_row >= self.eject_after:
                log.warning("replica %s answers again; back in service", replica.url)
            replica.failures_in_a_row = 0
            return
        replica.failures += 1
        replica.failures_in_a_row += 1
        now = self._clock()
        if replica.failures_in_a_row >= self.eject_after and replica.in_service(now):
            # Back from an ejection and failing again: twice as long each time.
            rounds = replica.failures_in_a_row - self.eject_after
            wait = min(self.max_eject_for_s, self.eject_for_s * 2 ** min(rounds, 16))
            replica.out_until = now + wait
            replica.ejections += 1
            log.warning("replica %s failed %d times in a row; out of service for %.0f s",
                        replica.url, replica.failures_in_a_row, wait)

    def another_in_service(self, avoid: set[str]) -> bool:
        """Is a replica whose URL is not in ``avoid`` in service?"""
        now = self._clock()
        return any(r.url not in avoid and r.in_service(now) for r in self.replicas)

    def stats(self) -> list[dict]:
        now = self._clock()
        return [{"url": r.url, "requests": r.requests, "answered": r.answered, "failures": r.failures,
                 "ejections": r.ejections, "in_service": r.in_service(now), "outstanding": r.outstanding}
                for r in self.replicas]
