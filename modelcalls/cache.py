"""``CallCache``: a SQLite file remembering every accepted model answer, so that a rerun resumes for free.

Key = sha256 over (backend model id, call name, template version, the rendered messages with every inline
image replaced by the sha256 of its bytes, temperature, max_tokens, json_schema, seed). Nothing else enters
the key: concurrency, retries, timeouts, output paths or the server URL can change without invalidating
answers. Value = text, token usage and finish reason.

The file is in WAL mode with a busy timeout, so several processes (the workers of a sharded run) can share
it; every ``put`` commits at once, so a killed run loses at most the calls that were in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from modelcalls.base import ChatRequest, ChatResponse, Usage, decode_data_url, image_url_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    call_name TEXT NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL
)
"""


def _canonical_part(part):
    url = image_url_of(part)
    if url is None:
        return part
    if url.startswith("data:"):
        digest = hashlib.sha256(decode_data_url(url)).hexdigest()
        return {"type": "image_url", "image_sha256": digest}
    return {"type": "image_url", "url": url}


def _canonical_messages(messages) -> list:
    canonical = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [_canonical_part(part) for part in content]
        canonical.append({**message, "content": content})
    return canonical


def cache_key(*, model: str, call_name: str, template_version: str, request: ChatRequest) -> str:
    """The cache key of one call (see the module docstring for what enters it)."""
    payload = {
        "model": model,
        "call": call_name,
        "template_version": template_version,
        "messages": _canonical_messages(request.messages),
        "temperature": float(request.temperature),
        "max_tokens": request.max_tokens,
        "json_schema": request.json_schema,
        "seed": request.seed,
    }
    if request.choices is not None:  # only scoring requests carry these (generation keys stay unchanged)
        payload.update(choices=list(request.choices), answer_prefix=request.answer_prefix)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """SQLite cache of model answers; safe for several processes sharing one file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ValueError(
                f"{self.path}: not a usable call cache ({error}); point the run at a new cache file or delete it"
            ) from None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def key(self, *, model: str, call_name: str, template_version: str, request: ChatRequest) -> str:
        return cache_key(model=model, call_name=call_name, template_version=template_version, request=request)

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason FROM calls WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        text, prompt_tokens, completion_tokens, finish_reason = row
        return ChatResponse(text, Usage(prompt_tokens, completion_tokens), finish_reason, cached=True)

    def put(self, key: str, response: ChatResponse, *, call_name: str = "", model: str = "") -> None:
        """Store an answer and commit at once (autocommit), replacing any earlier answer for the key."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    call_name,
                    model,
                    response.text,
                    response.usage.prompt_tokens,
                    response.usage.completion_tokens,
                    response.finish_reason,
                    time.time(),
                ),
            )
        self.writes += 1

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CallCache({str(self.path)!r})"
