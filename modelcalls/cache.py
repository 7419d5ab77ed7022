"""``CallCache``: a SQLite file remembering every accepted model answer, so that a rerun resumes for free.

Key = sha256 over (backend model id, call name, template version, the rendered messages with every inline
image replaced by the sha256 of its bytes, temperature, max_tokens, json_schema, seed). Nothing else enters
the key: concurrency, retries, timeouts, output paths or the server URL can change without invalidating
answers. Value = text, token usage and finish reason.

Group commit: ``put`` queues the answer (``get`` sees it at once) and the queue is written in one
transaction when it holds ``batch_size`` answers, when its oldest answer has waited ``max_batch_delay_s``,
on ``flush()`` (the runner flushes when a ``run_calls`` ends) and on ``close()``. A transaction is atomic,
so a run killed at any moment, even in the middle of a commit, leaves a valid file holding every batch
committed before and loses at most the answers still queued.

The file is in WAL mode with a busy timeout, so several processes on one machine (the workers of a sharded
run) can share it; opening waits for the others (busy timeout, retried WAL setup) instead of failing.
SQLite WAL needs shared memory between the processes: on a network filesystem (NFS, Lustre, GPFS) give
every shard its own cache file and join them afterwards with ``python -m modelcalls.cache_merge``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from atomic_files import DamagedFile
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
_INSERT = "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT_MANY = "SELECT key, text, prompt_tokens, completion_tokens, finish_reason FROM calls WHERE key IN"
_LOOKUP_CHUNK = 500  # keys per query (SQLite builds before 3.32 allow 999 parameters)
# Page cache of this connection (KiB, negative = size) and WAL pages between checkpoints: answers go in at
# random keys, so every batch dirties index pages all over the file; a page cache that holds them and
# fewer checkpoints (each one an fsync) cut a batch commit's time by about a third (BENCHMARKS.md).
_PAGE_CACHE_KIB = 65536
_WAL_AUTOCHECKPOINT_PAGES = 10000
_BUSY_WORDS = ("locked", "busy")


def _canonical_part(part):
    url = image_url_of(part)
    if url is None:
        return part
    if url.startswith("data:"):
        digest = hashlib.sha256(decode_data_url(url)).hexdigest()
        return {"type": "image_url", "image_sha256": digest}
    return {"type": "image_url", "url": url}


def _canonical_messages(messages):
    """The messages with every image part replaced by its canonical form; text-only messages as they are
    (they encode to the same JSON, so the key does not depend on whether a copy was made)."""
    for message in messages:  # a plain loop: this runs once per call
        if not isinstance(message["content"], str):
            break
    else:
        return messages
    canonical = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = [_canonical_part(part) for part in content]
        canonical.append({**message, "content": content})
    return canonical


# One encoder for every key (``json.dumps`` with these options would build a new one per call).
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


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
    return hashlib.sha256(_KEY_ENCODER.encode(payload).encode("utf-8")).hexdigest()


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return any(word in str(error).lower() for word in _BUSY_WORDS)


def open_cache_db(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """Connect, switch to WAL and create the table, waiting up to ``busy_timeout_s`` for other processes.

    SQLite's busy handler does not cover every step of opening a shared file (switching the journal mode
    and recovering a WAL after a crash can answer "database is locked" at once), so the setup is retried
    with a short backoff until the timeout; only then does it fail, saying so."""
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.005
    while True:
        db = None
        try:
            db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":  # WAL is kept in the file
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process never loses a commit
            db.execute(f"PRAGMA cache_size = -{_PAGE_CACHE_KIB}")
            db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
            db.execute(_SCHEMA)
            return db
        except sqlite3.OperationalError as error:
            if db is not None:
                db.close()
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)
        except BaseException:
            if db is not None:
                db.close()
            raise


def _commit_rows(db: sqlite3.Connection, pending: dict[str, tuple]) -> int:
    """Write the queued rows in one transaction and empty the queue; returns how many were written."""
    if not pending:
        return 0
    rows = list(pending.values())
    try:
        db.execute("BEGIN IMMEDIATE")  # take the write lock first: no read-to-write upgrade deadlock
        db.executemany(_INSERT, rows)
        db.execute("COMMIT")
    except sqlite3.Error:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    pending.clear()
    return len(rows)


def _commit_and_close(db: sqlite3.Connection, pending: dict[str, tuple]) -> None:
    """A cache dropped without ``close()`` (or left open at exit) still commits what it had queued."""
    try:
        _commit_rows(db, pending)
    except sqlite3.Error:
        pass  # nothing to report to at exit; the answers are asked for again on the next run
    finally:
        db.close()


class CallCache:
    """SQLite cache of model answers with group commit; safe for several processes sharing one file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0, batch_size: int = 1024,
                 max_batch_delay_s: float = 0.25):
        if batch_size < 1:
            raise ValueError(f"CallCache: batch_size must be >= 1, got {batch_size}")
        if max_batch_delay_s < 0:
            raise ValueError(f"CallCache: max_batch_delay_s must be >= 0, got {max_batch_delay_s}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = open_cache_db(self.path, busy_timeout_s)
        except sqlite3.OperationalError as error:
            if _is_busy(error):
                raise TimeoutError(
                    f"{self.path}: still locked by another process after {busy_timeout_s:g} s ({error}); "
                    "is a run holding it open, or is the file on a network filesystem (give each shard its own)?"
                ) from None
            raise ValueError(f"{self.path}: not a usable call cache ({error}); point the run at a new cache file or delete it") from None
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None
        self.batch_size = batch_size
        self.max_batch_delay_s = max_batch_delay_s
        self._lock = threading.Lock()
        self._pending: dict[str, tuple] = {}  # key -> row, answers not yet committed
        self._finalizer = weakref.finalize(self, _commit_and_close, self._db, self._pending)
        self._pending_since = 0.0
        self.hits = 0
        self.misses = 0
        self.writes = 0  # answers committed
        self.commits = 0  # transactions committed

    def _damaged(self, error: sqlite3.Error) -> DamagedFile:
        return DamagedFile(f"{self.path}: not a usable call cache, it is damaged ({error}); move it aside and rerun "
                           "(finished steps resume from their checkpoints; only answers not checkpointed are asked again)")

    def key(self, *, model: str, call_name: str, template_version: str, request: ChatRequest) -> str:
        return cache_key(model=model, call_name=call_name, template_version=template_version, request=request)

    def get_many(self, keys: list[str]) -> dict[str, ChatResponse]:
        """The cached answers of ``keys`` (those it has), with one query per ``_LOOKUP_CHUNK`` keys."""
        found: dict[str, tuple] = {}
        with self._lock:
            unqueued = []
            for key in keys:
                row = self._pending.get(key)
                if row is not None:
                    found[key] = row[3:7]
                else:
                    unqueued.append(key)
            for start in range(0, len(unqueued), _LOOKUP_CHUNK):
                chunk = unqueued[start:start + _LOOKUP_CHUNK]
                query = f"{_SELECT_MANY} ({','.join('?' * len(chunk))})"
                try:
                    found.update((row[0], row[1:]) for row in self._db.execute(query, chunk))
                except sqlite3.DatabaseError as error:
                    if type(error) is sqlite3.DatabaseError:  # SQLITE_CORRUPT / NOTADB, not "locked" and the like
                        raise self._damaged(error) from None
                    raise
        answers = {key: ChatResponse(text, Usage(prompt_tokens, completion_tokens), finish_reason, cached=True)
                   for key, (text, prompt_tokens, completion_tokens, finish_reason) in found.items()}
        hits = sum(key in answers for key in keys)
        self.hits += hits
        self.misses += len(keys) - hits
        return answers

    def get(self, key: str) -> ChatResponse | None:
        """The cached answer of one key, or ``None`` (``get_many`` of one key)."""
        return self.get_many([key]).get(key)

    def put(self, key: str, response: ChatResponse, *, call_name: str = "", model: str = "") -> None:
        """Queue an answer (replacing any earlier answer for the key); it is committed with its batch.

        Raises ``sqlite3.Error`` when the batch it completes cannot be written; the batch stays queued and
        is tried again on the next commit."""
        row = (key, call_name, model, response.text, response.usage.prompt_tokens,
               response.usage.completion_tokens, response.finish_reason, time.time())
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending[key] = row
            due = (len(self._pending) >= self.batch_size
                   or time.monotonic() - self._pending_since >= self.max_batch_delay_s)
            if due:
                self._commit_pending()

    def flush(self) -> None:
        """Commit every queued answer now (one transaction)."""
        with self._lock:
            self._commit_pending()

    def _commit_pending(self) -> None:
        try:
            written = _commit_rows(self._db, self._pending)
        except sqlite3.Error:
            self._pending_since = time.monotonic()  # retry with the next batch, not at every put
            raise
        if written:
            self.writes += written
            self.commits += 1

    @property
    def pending(self) -> int:
        """Answers queued and not yet committed."""
        return len(self._pending)

    def __len__(self) -> int:
        with self._lock:
            stored = self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            if not self._pending:
                return stored
            placeholders = ",".join("?" * len(self._pending))
            overlap = self._db.execute(
                f"SELECT COUNT(*) FROM calls WHERE key IN ({placeholders})", list(self._pending)
            ).fetchone()[0]
            return stored + len(self._pending) - overlap

    def close(self) -> None:
        """Commit what is queued and close the file."""
        with self._lock:
            try:
                self._commit_pending()
            finally:
                self._finalizer()  # closes the file (nothing left to commit)

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CallCache({str(self.path)!r})"
