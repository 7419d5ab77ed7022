"""A stub OpenAI-compatible chat-completions server for benchmarks and tests, in its own process.

    python bench/stub_server.py --port 8011 --delay-ms 50 [--rate-limited 0.2 --retry-after 1] [--stop-after 500]

A bare ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, Content-Length bodies), so that the server costs
the client side of a benchmark as little CPU as possible. It binds 127.0.0.1 only and stops by itself after
``--max-seconds`` or ``--max-requests``.

* ``POST .../chat/completions``: after ``delay_ms``, answers ``{"verdict": "unsafe", "item": LAST_WORD}``
  (the last word of the last message, so a client can check that every answer belongs to its request). A
  fraction ``rate_limited`` of requests (seeded, reproducible) is answered ``429`` with
  ``Retry-After: retry_after`` instead, at once.
* ``GET /stats``: ``{"requests": ..., "answered": ..., "rate_limited": ..., "connections": ...}``.
* ``GET /config?delay_ms=50&rate_limited=0.2&retry_after=1``: change the behaviour between phases.
* ``GET /reset``: zero the counters. ``GET /health``: ``{"status": "ok"}``.
* ``--stop-after N``: after answering N completions, close every connection and exit (a replica that dies
  mid-run; its port then refuses connections).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_STATUS_TEXT = {200: b"OK", 404: b"Not Found", 411: b"Length Required", 429: b"Too Many Requests"}


def completion(item: str) -> bytes:
    content = json.dumps({"verdict": "unsafe", "item": item})
    return json.dumps({
        "id": "stub", "object": "chat.completion", "model": "stub",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 9, "total_tokens": 51},
    }).encode()


def last_word(body: bytes) -> str:
    try:
        content = json.loads(body)["messages"][-1]["content"]
        if not isinstance(content, str):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content.rsplit(None, 1)[-1] if content.strip() else ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def response_bytes(status: int, body: bytes, extra_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _STATUS_TEXT.get(status, b"")),
            b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    head += [f"{name}: {value}".encode() for name, value in extra_headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Stub:
    def __init__(self, delay_ms: float, rate_limited: float, retry_after: float, stop_after: int | None, seed: int):
        self.delay = delay_ms / 1000
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.stop_after = stop_after
        self.rng = random.Random(seed)
        self.counts = {"requests": 0, "answered": 0, "rate_limited": 0}
        self.connections: set[asyncio.Transport] = set()
        self.opened = 0
        self.stopped = asyncio.Event()

    def control(self, target: str) -> bytes:
        url = urlsplit(target)
        if url.path == "/stats":
            return json.dumps({**self.counts, "connections": self.opened}).encode()
        if url.path == "/reset":
            self.counts = dict.fromkeys(self.counts, 0)
            self.opened = len(self.connections)
            return b"{}"
        if url.path == "/config":
            query = {name: float(values[0]) for name, values in parse_qs(url.query).items()}
            self.delay = query.get("delay_ms", self.delay * 1000) / 1000
            self.rate_limited = query.get("rate_limited", self.rate_limited)
            self.retry_after = query.get("retry_after", self.retry_after)
            return b"{}"
        return b'{"status": "ok"}'

    def stop(self) -> None:
        for transport in list(self.connections):
            transport.abort()
        self.stopped.set()


class Connection(asyncio.Protocol):
    def __init__(self, stub: Stub):
        self.stub = stub
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.stub.connections.add(transport)
        self.stub.opened += 1

    def connection_lost(self, exc) -> None:
        self.stub.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = bytes(self.buffer[:head_end]).split(b"\r\n")
            method, target = lines[0].split(b" ", 2)[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    self.transport.write(response_bytes(411, b'{"error": "send Content-Length"}'))
                    self.transport.close()
                    return
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body = bytes(self.buffer[head_end + 4:end])
            del self.buffer[:end]
            self.handle(method, target.decode("latin-1"), body)

    def handle(self, method: bytes, target: str, body: bytes) -> None:
        stub = self.stub
        if method == b"POST" and target.endswith("/chat/completions"):
            stub.counts["requests"] += 1
            if stub.rate_limited and stub.rng.random() < stub.rate_limited:
                stub.counts["rate_limited"] += 1
                self.transport.write(response_bytes(429, b'{"error": {"message": "rate limited (stub)"}}',
                                                    (("Retry-After", f"{stub.retry_after:g}"),)))
                return
            answer = response_bytes(200, completion(last_word(body)))
            if stub.delay:
                asyncio.get_running_loop().call_later(stub.delay, self.answer, answer)
            else:
                self.answer(answer)
        elif method == b"GET":
            self.transport.write(response_bytes(200, stub.control(target)))
        else:
            self.transport.write(response_bytes(404, b'{"error": "not found"}'))

    def answer(self, data: bytes) -> None:
        stub = self.stub
        if self.transport.is_closing() or stub.stopped.is_set():
            return
        self.transport.write(data)
        stub.counts["answered"] += 1
        if stub.stop_after is not None and stub.counts["answered"] >= stub.stop_after:
            stub.stop()


async def serve(port: int, stub: Stub, max_seconds: float, max_requests: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(stub), "127.0.0.1", port, backlog=1024, reuse_address=True)
    deadline = time.monotonic() + max_seconds
    async with server:
        while not stub.stopped.is_set() and time.monotonic() < deadline and stub.counts["requests"] < max_requests:
            try:
                await asyncio.wait_for(stub.stopped.wait(), timeout=0.2)
            except asyncio.TimeoutError:
                pass
        server.close()
        stub.stop()


# ------------------------------------------------------------------------------- client-side handle

def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(client CPUs, server CPUs) for a benchmark: the last CPU this process may use for the stub server(s),
    the others for the client, so that neither takes the other's core (as on a real deployment, where the
    servers are other machines). ``(None, None)`` where affinity cannot be set or there is a single CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StubProcess:
    """Start the stub in a subprocess and wait until it answers; ``.base_url`` is its ``/v1`` URL. ``pin``:
    run it on the server CPU of ``split_cpus`` (benchmarks)."""

    def __init__(self, *, delay_ms: float = 0.0, rate_limited: float = 0.0, retry_after: float = 1.0,
                 stop_after: int | None = None, max_seconds: float = 1800, seed: int = 0, pin: bool = False):
        self.port = free_port()
        command = [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port), "--delay-ms", str(delay_ms),
                   "--rate-limited", str(rate_limited), "--retry-after", str(retry_after),
                   "--max-seconds", str(max_seconds), "--seed", str(seed)]
        if stop_after is not None:
            command += ["--stop-after", str(stop_after)]
        self.process = subprocess.Popen(command)
        server_cpus = split_cpus()[1] if pin else None
        if server_cpus:
            os.sched_setaffinity(self.process.pid, server_cpus)
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/health")
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise RuntimeError("the stub server did not start") from None
                time.sleep(0.05)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.root}{path}", timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self.get("/stats")

    def configure(self, **settings: float) -> None:
        self.get("/config?" + "&".join(f"{name}={value}" for name, value in settings.items()))

    def reset(self) -> None:
        self.get("/reset")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer each completion after this long")
    parser.add_argument("--rate-limited", type=float, default=0.0, help="fraction of completions answered 429")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with a 429")
    parser.add_argument("--stop-after", type=int, default=None, help="exit after answering this many completions")
    parser.add_argument("--max-seconds", type=float, default=1800, help="exit after this long (bounded run)")
    parser.add_argument("--max-requests", type=int, default=10_000_000, help="exit after this many completions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rate-limit draw")
    args = parser.parse_args()
    stub = Stub(args.delay_ms, args.rate_limited, args.retry_after, args.stop_after, args.seed)
    asyncio.run(serve(args.port, stub, args.max_seconds, args.max_requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
