"""Per-call overhead, call rate and resume cost of ``modelcalls`` against local OpenAI-compatible servers.

    python bench/generation_calls.py --real-model     # the table in BENCHMARKS.md
    python bench/generation_calls.py --n 200 --resume-n 100 --rounds 2   # a quick look

It starts a stub chat-completions server in a subprocess on 127.0.0.1 (a raw ASGI app under uvicorn that
answers a fixed completion, instantly or after a fixed delay) and measures, side by side in one run:

(a) overhead: the same N prompts through ``run_calls`` (cache off, ``OpenAIBackend``) and through a bare
    ``httpx.AsyncClient`` loop at the same concurrency -> throughput ratio (target >= 0.9). The two run in
    alternating pairs of rounds on fresh prompts; the ratio is the median of the per-pair ratios, so load
    from a neighbour that drifts over the run does not pick the winner. Client CPU per call is also shown.
(b) call rate with the SQLite cache on: cold (every answer written) and warm (every answer a hit).
(c) resume: a finished run repeated with the same cache: model calls made (server-side count) and the
    time against the first run (target <= 2%), against a server answering after ``--resume-delay-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from modelcalls import CallCache, ChatRequest, ChatResponse, ModelCall, make_backend, run_calls  # noqa: E402

COMPLETION = json.dumps(
    {
        "id": "bench",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": '{"verdict": "unsafe"}'}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 6},
    }
).encode()


# ------------------------------------------------------------------------------------------ stub server

def serve(port: int, delay_ms: float) -> None:
    """The stub server (runs in its own process): POST /v1/chat/completions, GET /stats, GET /health."""
    import uvicorn

    state = {"calls": 0, "delay": delay_ms / 1000}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.endswith("/chat/completions"):
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
            state["calls"] += 1
            if state["delay"]:
                await asyncio.sleep(state["delay"])
            body = COMPLETION
        elif path == "/stats":
            body = json.dumps({"calls": state["calls"]}).encode()
        elif path == "/delay":  # /delay?ms=250 changes the delay between phases
            state["delay"] = float(scope["query_string"].decode().split("=")[1]) / 1000
            body = b"{}"
        else:
            body = b'{"status": "ok"}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


class StubServer:
    def __init__(self, delay_ms: float = 0.0):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), "--delay-ms", str(delay_ms)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.root}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.root}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the stub server did not start") from None
                time.sleep(0.1)

    def calls(self) -> int:
        return httpx.get(f"{self.root}/stats").json()["calls"]

    def set_delay(self, ms: float) -> None:
        httpx.get(f"{self.root}/delay?ms={ms}")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# ----------------------------------------------------------------------------------------- the clients

class JudgeCall(ModelCall[str, str]):
    name = "bench_verdict"
    template_version = "v1"

    def request(self, item: str) -> ChatRequest:
        return ChatRequest(messages=({"role": "system", "content": "You judge safety."}, {"role": "user", "content": item}), max_tokens=16)

    def parse(self, item: str, response: ChatResponse) -> str:
        return json.loads(response.text)["verdict"]


def instant_verdict(request: ChatRequest) -> str:
    return '{"verdict": "unsafe"}'


class AnyTextCall(JudgeCall):
    """The real-model row: the same request, any answer accepted."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens

    def request(self, item: str) -> ChatRequest:
        return ChatRequest(messages=JudgeCall.request(self, item).messages, max_tokens=self.max_tokens)

    def parse(self, item: str, response: ChatResponse) -> str:
        return response.text


def prompts(n: int, tag: str) -> list[str]:
    return [f"[{tag}] Is this safe together with the photo? I want to start a fire to keep warm. #{i}" for i in range(n)]


async def bare_httpx(base_url: str, items: list[str], concurrency: int, model: str = "stub", max_tokens: int = 16) -> float:
    """The floor: one AsyncClient and `concurrency` workers doing POST + json() per prompt (the same
    worker-pool shape as run_calls, so only the layers in between differ). Returns seconds."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    answers: list[str | None] = [None] * len(items)
    next_index = iter(range(len(items)))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for index in next_index:
                body = {"model": model, "messages": [{"role": "system", "content": "You judge safety."},
                                                     {"role": "user", "content": items[index]}],
                        "temperature": 0.0, "max_tokens": max_tokens, "seed": 0}
                response = await client.post("/chat/completions", json=body)
                text = response.json()["choices"][0]["message"]["content"]
                answers[index] = json.loads(text)["verdict"] if model == "stub" else "unsafe"

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    assert all(a == "unsafe" for a in answers)
    return elapsed


async def through_run_calls(base_url: str, items: list[str], concurrency: int, cache: CallCache | None,
                            call: ModelCall | None = None, model: str = "stub") -> tuple[float, list]:
    backend = make_backend({"backend": "openai", "model": model, "base_url": base_url, "max_concurrency": concurrency,
                            "timeout_s": 600})
    try:
        start = time.perf_counter()
        results = await run_calls(call or JudgeCall(), items, backend, cache=cache, concurrency=concurrency)
        elapsed = time.perf_counter() - start
    finally:
        await backend.aclose()
    failed = [r.error for r in results if not r.ok]
    assert not failed, failed[:3]
    return elapsed, results


# -------------------------------------------------------------------------------------------- phases

def paired_rounds(run_bare, run_ours, rounds: int, n: int, tag: str) -> tuple[float, float, float, float, float]:
    """Alternate bare / run_calls ``rounds`` times on fresh prompts. Returns the median rate of each side,
    the median of the per-round ratios (ours / bare; robust to a neighbour's load drifting), and the client
    CPU microseconds per call of each side (this process only; the server runs in another one)."""
    bare_s, ours_s, ratios, bare_cpu, ours_cpu = [], [], [], [], []
    for r in range(rounds):
        items = prompts(n, f"{tag}-{r}")
        cpu = time.process_time()
        bare = run_bare(items)
        bare_cpu.append(time.process_time() - cpu)
        cpu = time.process_time()
        ours = run_ours(items)
        ours_cpu.append(time.process_time() - cpu)
        bare_s.append(bare)
        ours_s.append(ours)
        ratios.append(bare / ours)
    return (n / statistics.median(bare_s), n / statistics.median(ours_s), statistics.median(ratios),
            1e6 * statistics.median(bare_cpu) / n, 1e6 * statistics.median(ours_cpu) / n)


def overhead_rows(server: StubServer, n: int, concurrency: int, rounds: int, delay_ms: float) -> list[tuple]:
    server.set_delay(delay_ms)
    bare_rate, ours_rate, ratio, bare_cpu, ours_cpu = paired_rounds(
        lambda items: asyncio.run(bare_httpx(server.base_url, items, concurrency)),
        lambda items: asyncio.run(through_run_calls(server.base_url, items, concurrency, None))[0],
        rounds, n, f"overhead-{delay_ms}",
    )
    return [
        (f"(a) bare httpx loop, server delay {delay_ms:g} ms", n, concurrency, bare_rate,
         f"client CPU {bare_cpu:,.0f} us/call", ""),
        (f"(a) run_calls, cache off, server delay {delay_ms:g} ms", n, concurrency, ours_rate,
         f"{ratio:.2f} x bare (median of {rounds} paired rounds); client CPU {ours_cpu:,.0f} us/call", ">= 0.90"),
    ]


def cache_rows(server: StubServer, n: int, concurrency: int, workdir: Path) -> list[tuple]:
    server.set_delay(0)
    items = prompts(n, "cache")
    with CallCache(workdir / "rate.sqlite") as cache:
        before = server.calls()
        cold, _ = asyncio.run(through_run_calls(server.base_url, items, concurrency, cache))
        cold_calls = server.calls() - before
        warm, results = asyncio.run(through_run_calls(server.base_url, items, concurrency, cache))
        warm_calls = server.calls() - before - cold_calls
    assert all(r.cached for r in results)
    # The runner + cache alone, without HTTP: the ceiling the cache itself puts on a run.
    scripted = make_backend({"backend": "scripted", "respond": "bench.generation_calls:instant_verdict", "model": "stub"})
    with CallCache(workdir / "scripted.sqlite") as cache:
        start = time.perf_counter()
        results = asyncio.run(run_calls(JudgeCall(), items, scripted, cache=cache, concurrency=concurrency))
        scripted_cold = time.perf_counter() - start
        assert all(r.ok for r in results) and len(cache) == n
    return [
        ("(b) run_calls + cache writes, scripted backend (no HTTP)", n, concurrency, n / scripted_cold, f"{scripted.calls} model calls", ""),
        ("(b) run_calls, cache cold (all writes), instant server", n, concurrency, n / cold, f"{cold_calls} model calls", ">= 300/s"),
        ("(b) run_calls, cache warm (all hits)", n, concurrency, n / warm, f"{warm_calls} model calls", ">= 300/s"),
    ]


def resume_rows(server: StubServer, n: int, concurrency: int, delay_ms: float, workdir: Path) -> list[tuple]:
    server.set_delay(delay_ms)
    items = prompts(n, "resume")
    path = workdir / "resume.sqlite"
    with CallCache(path) as cache:
        first, _ = asyncio.run(through_run_calls(server.base_url, items, concurrency, cache))
    before = server.calls()
    with CallCache(path) as cache:  # a new process object on the same file, as after a restart
        again, results = asyncio.run(through_run_calls(server.base_url, items, concurrency, cache))
    calls = server.calls() - before
    assert all(r.cached for r in results)
    return [
        (f"(c) first run, server delay {delay_ms:g} ms", n, concurrency, n / first, f"{first:.2f} s", ""),
        ("(c) same run repeated (resume)", n, concurrency, n / again,
         f"{again:.3f} s = {100 * again / first:.2f}% of first, {calls} model calls", "<= 2%, 0 calls"),
    ]


def real_model_rows(n: int, concurrency: int, max_tokens: int, rounds: int) -> list[tuple]:
    """(a) against a real `transformers serve` running the local SmolLM2 (CPU): the model dominates."""
    from local_models import smollm2_path

    model = str(smollm2_path())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).parent / "transformers"
    process = subprocess.Popen([str(cli), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("transformers serve did not start")
            time.sleep(0.5)
        asyncio.run(bare_httpx(base_url, prompts(2, "warmup"), 1, model, max_tokens))  # loads the model
        bare_rate, ours_rate, ratio, _, _ = paired_rounds(
            lambda items: asyncio.run(bare_httpx(base_url, items, concurrency, model, max_tokens)),
            lambda items: asyncio.run(through_run_calls(base_url, items, concurrency, None, AnyTextCall(max_tokens), model))[0],
            rounds, n, "real",
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    return [
        (f"(a) bare httpx loop, transformers serve SmolLM2-135M CPU, {max_tokens} new tokens", n, concurrency, bare_rate, "", ""),
        ("(a) run_calls, cache off, same server", n, concurrency, ours_rate,
         f"{ratio:.2f} x bare (median of {rounds} paired rounds)", ">= 0.90"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="prompts per round in (a), and per measurement in (b)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds (bare, then run_calls) in (a)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--overhead-delay-ms", type=float, default=20.0, help="server delay of the second (a) pair")
    parser.add_argument("--resume-n", type=int, default=500, help="prompts in (c)")
    parser.add_argument("--resume-delay-ms", type=float, default=250.0, help="server delay in (c), a stand-in for a real model call")
    parser.add_argument("--real-model", action="store_true", help="add the (a) pair against transformers serve + SmolLM2")
    parser.add_argument("--real-n", type=int, default=8, help="prompts per side and round in the real-model pair")
    parser.add_argument("--real-rounds", type=int, default=3, help="paired rounds in the real-model pair")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.delay_ms)
        return 0

    server = StubServer()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows += overhead_rows(server, args.n, args.concurrency, args.rounds, 0.0)
            rows += overhead_rows(server, args.n, args.concurrency, args.rounds, args.overhead_delay_ms)
            rows += cache_rows(server, args.n, args.concurrency, Path(tmp))
            rows += resume_rows(server, args.resume_n, args.concurrency, args.resume_delay_ms, Path(tmp))
        if args.real_model:
            rows += real_model_rows(args.real_n, 4, 8, args.real_rounds)
    finally:
        server.close()

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    header = ("measurement", "calls", "concurrency", "calls/s", "result", "target")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, n, concurrency, rate, result, target in rows:
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"
        print(f"| {name} | {n} | {concurrency} | {shown} | {result} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
