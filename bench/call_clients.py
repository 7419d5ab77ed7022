"""One client of the call-layer benchmark, run in a process of its own (so its import time, CPU and peak RSS
are its own): N prompts at concurrency C against the stub server, every answer checked.

    python bench/call_clients.py CLIENT --url http://127.0.0.1:PORT/v1 --n 1000 --concurrency 64 --tag r0

prints one JSON line: client, seconds (first request to last answer), cpu_s (this process and its
children over that span), peak_rss_mib, import_s, ok (answers that belong to their prompt), n.

``--loop asyncio|uvloop`` picks the event loop (bare clients and peers default to asyncio's own, ours to
``modelcalls.event_loop``'s choice: uvloop when installed); the JSON line says which ran.

Clients: ``ours`` (``run_calls`` + ``OpenAIBackend`` + ``CallCache``, cache on), bare loops over
``pyreqwest`` (the client ours is built on), ``aiohttp``, ``httpx`` (default pool), ``httpx-sharded`` (httpx tuned: C/8 connections in each of 8
clients, which keeps httpcore's per-request pool scan short), ``httpx2``, the ``openai`` SDK, and the peers
``curator`` (bespokelabs-curator, cache on; its tiktoken token counting, which needs a download, is replaced
by a 4-characters-per-token count, which only makes it cheaper) and ``distilabel`` (``OpenAILLM.agenerate``). A client whose
library this Python cannot import exits 3 with one line saying so. Every loop has the same shape as
``run_calls``: C workers taking the next prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Peers must stay on 127.0.0.1: no telemetry, no hosted viewer, no cost-map or Hub downloads.
OFFLINE = {"TELEMETRY_ENABLED": "false", "CURATOR_VIEWER": "0", "CURATOR_DISABLE_RICH_DISPLAY": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "DO_NOT_TRACK": "1", "TOKENIZERS_PARALLELISM": "false"}
SYSTEM = "You judge safety."
MAX_TOKENS = 16


def prompts(n: int, tag: str) -> list[str]:
    return [f"[{tag}] Is this safe together with the photo? I want to start a fire to keep warm. #{i}" for i in range(n)]


def messages(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def body(prompt: str) -> dict:
    return {"model": "stub", "messages": messages(prompt), "temperature": 0.0, "max_tokens": MAX_TOKENS, "seed": 0}


def item_of(content: str) -> str:
    return json.loads(content)["item"]


async def pool(n: int, concurrency: int, one) -> None:
    """``concurrency`` workers, each awaiting ``one(index)`` for the next index until none is left."""
    indices = iter(range(n))

    async def worker() -> None:
        for index in indices:
            await one(index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))


# ---------------------------------------------------------------------------------------------- clients

async def run_aiohttp(url: str, items: list[str], concurrency: int, answers: list) -> None:
    import aiohttp

    endpoint = f"{url}/chat/completions"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> None:
            async with session.post(endpoint, json=body(items[index])) as response:
                data = await response.json()
            answers[index] = item_of(data["choices"][0]["message"]["content"])

        await pool(len(items), concurrency, one)


async def run_pyreqwest(url: str, items: list[str], concurrency: int, answers: list) -> None:
    from pyreqwest.client import ClientBuilder

    endpoint = f"{url}/chat/completions"
    async with ClientBuilder().max_connections(concurrency).default_headers({"Content-Type": "application/json"}).build() as client:

        async def one(index: int) -> None:
            response = await client.post(endpoint).body_bytes(json.dumps(body(items[index])).encode()).build().send()
            data = json.loads(bytes(await response.bytes()))
            answers[index] = item_of(data["choices"][0]["message"]["content"])

        await pool(len(items), concurrency, one)


async def _run_httpx_like(module, url: str, items: list[str], concurrency: int, answers: list, shards: int = 1) -> None:
    per_client = max(1, concurrency // shards)
    limits = module.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [module.AsyncClient(base_url=url, limits=limits, timeout=600) for _ in range(shards)]
    try:

        async def one(index: int) -> None:
            response = await clients[index % shards].post("/chat/completions", json=body(items[index]))
            answers[index] = item_of(response.json()["choices"][0]["message"]["content"])

        await pool(len(items), concurrency, one)
    finally:
        for client in clients:
            await client.aclose()


async def run_httpx(url, items, concurrency, answers) -> None:
    import httpx

    await _run_httpx_like(httpx, url, items, concurrency, answers)


async def run_httpx_sharded(url, items, concurrency, answers) -> None:
    import httpx

    await _run_httpx_like(httpx, url, items, concurrency, answers, shards=8)


async def run_httpx2(url, items, concurrency, answers) -> None:
    import httpx2

    await _run_httpx_like(httpx2, url, items, concurrency, answers)


async def run_openai(url, items, concurrency, answers) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="stub", max_retries=0, timeout=600)
    try:

        async def one(index: int) -> None:
            completion = await client.chat.completions.create(
                model="stub", messages=messages(items[index]), temperature=0.0, max_tokens=MAX_TOKENS, seed=0)
            answers[index] = item_of(completion.choices[0].message.content)

        await pool(len(items), concurrency, one)
    finally:
        await client.close()


async def run_distilabel(url, items, concurrency, answers) -> None:
    from distilabel.models.llms import OpenAILLM

    llm = OpenAILLM(model="stub", base_url=url, api_key="stub", max_retries=0, timeout=600)
    llm.load()

    async def one(index: int) -> None:
        output = await llm.agenerate(input=messages(items[index]), max_new_tokens=MAX_TOKENS, temperature=0.0)
        answers[index] = item_of(output["generations"][0])

    await pool(len(items), concurrency, one)


class _FourCharsPerToken:
    """Stands in for tiktoken's cl100k_base, whose data file curator would download (no internet here)."""

    def encode(self, text, **kwargs) -> list[int]:
        return [0] * (len(str(text)) // 4 + 1)


def run_curator(url, items, concurrency, answers, workdir: Path) -> None:
    from bespokelabs import curator
    from bespokelabs.curator.request_processor.online import openai_online_request_processor as online

    online.OpenAIOnlineRequestProcessor.get_token_encoding = lambda self: _FourCharsPerToken()

    class Judge(curator.LLM):
        def prompt(self, row):
            return messages(row["prompt"])

        def parse(self, row, response):
            return {"index": row["index"], "item": item_of(response)}

    judge = Judge(
        model_name="stub", backend="openai", generation_params={"temperature": 0.0, "max_tokens": MAX_TOKENS, "seed": 0},
        backend_params={"base_url": url, "api_key": "stub", "max_concurrent_requests": concurrency,
                        "max_requests_per_minute": 10**8, "max_tokens_per_minute": 10**11, "max_retries": 0,
                        "require_all_responses": True},
    )
    output = judge([{"index": i, "prompt": p} for i, p in enumerate(items)])
    rows = output.dataset if hasattr(output, "dataset") else output
    for row in rows:
        answers[row["index"]] = row["item"]


async def run_ours(url, items, concurrency, answers, workdir: Path, cache_path: Path | None, extra: dict) -> None:
    sys.path.insert(0, str(REPO))
    from modelcalls import CallCache, ChatRequest, ChatResponse, ModelCall, make_backend, run_calls

    class BenchCall(ModelCall[str, str]):
        name = "bench_verdict"
        template_version = "v1"

        def request(self, item: str) -> ChatRequest:
            return ChatRequest(messages=tuple(messages(item)), max_tokens=MAX_TOKENS)

        def parse(self, item: str, response: ChatResponse) -> str:
            return item_of(response.text)

    urls = url.split(",")  # several replicas: "http://127.0.0.1:A/v1,http://127.0.0.1:B/v1"
    backend = make_backend({"backend": "openai", "model": "stub", "base_url": urls if len(urls) > 1 else url,
                            "max_concurrency": concurrency, "timeout_s": 600, "retry_max_delay_s": 5,
                            # (2) answers 20 % of requests 429: with the default 5 retries one request in
                            # 0.2**6 = 16,000 still fails (~27 % of 5,000-prompt runs lose one); with 10, 1 in 49M.
                            "max_retries": 10})
    with CallCache(cache_path or workdir / "calls.sqlite") as cache:
        try:
            results = await run_calls(BenchCall(), items, backend, cache=cache, concurrency=concurrency)
        finally:
            await backend.aclose()
    for index, result in enumerate(results):
        answers[index] = result.output if result.ok else None
    extra["cached"] = sum(result.cached for result in results)
    extra["model_calls"] = sum(result.model_calls for result in results)
    extra["replicas"] = backend.replica_stats()


ASYNC_CLIENTS = {"aiohttp": run_aiohttp, "pyreqwest": run_pyreqwest, "httpx": run_httpx, "httpx-sharded": run_httpx_sharded,
                 "httpx2": run_httpx2, "openai": run_openai, "distilabel": run_distilabel}
WORKDIR_CLIENTS = {"ours": run_ours, "curator": run_curator}
CLIENTS = [*ASYNC_CLIENTS, *WORKDIR_CLIENTS]
IMPORTS = {"aiohttp": "aiohttp", "pyreqwest": "pyreqwest.client", "httpx": "httpx", "httpx-sharded": "httpx", "httpx2": "httpx2", "openai": "openai",
           "distilabel": "distilabel.models.llms", "curator": "bespokelabs.curator", "ours": None}


def run_on(loop: str | None, coro, extra: dict) -> None:
    """Run a bare client's coroutine on asyncio's loop (its default) or on uvloop."""
    extra["loop"] = loop or "asyncio"
    if loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_kib() -> int:
    """This process's peak RSS. Linux: VmHWM, which starts afresh at exec (ru_maxrss would also count the
    parent's memory copied at fork, before the exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=CLIENTS)
    parser.add_argument("--url", required=True, help="the stub's /v1 base URL (127.0.0.1); ours: several, comma-separated")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tag", default="r0", help="makes the prompts of this round unique (no cache hits)")
    parser.add_argument("--cache", type=Path, default=None, help="ours: the call cache file to use (kept)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default=None,
                        help="the event loop (default: the client's own; ours: modelcalls.event_loop's choice)")
    args = parser.parse_args()
    os.environ.update(OFFLINE)

    start_import = time.perf_counter()
    module = IMPORTS[args.client]
    if module is not None:
        try:
            __import__(module)
        except ImportError as error:
            print(f"skipped {args.client}: {sys.executable} cannot import {module} ({error})", file=sys.stderr)
            return 3
    else:
        sys.path.insert(0, str(REPO))
        import pyreqwest.client  # noqa: F401  (the backend loads it at its first live call; here, like the bare clients, before timing)

        import modelcalls.openai_backend  # noqa: F401
    if args.loop == "uvloop" or (module is None and args.loop is None):
        try:
            import uvloop  # noqa: F401  (loaded by the first run otherwise; before timing, as above)
        except ImportError as error:
            if args.loop == "uvloop":
                print(f"skipped {args.client} on uvloop: {sys.executable} cannot import uvloop ({error})", file=sys.stderr)
                return 3
    import_s = time.perf_counter() - start_import

    items = prompts(args.n, args.tag if args.cache else f"{args.client}-{args.tag}")
    answers: list = [None] * args.n
    extra: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CURATOR_CACHE_DIR"] = str(Path(tmp) / "curator")
        cpu, start = cpu_seconds(), time.perf_counter()
        if args.client in ASYNC_CLIENTS:
            run_on(args.loop, ASYNC_CLIENTS[args.client](args.url, items, args.concurrency, answers), extra)
        elif args.client == "curator":
            run_curator(args.url, items, args.concurrency, answers, Path(tmp))
        else:
            if args.loop is not None:
                os.environ["RMS_EVENT_LOOP"] = args.loop
            from modelcalls import event_loop

            extra["loop"] = event_loop.loop_name()
            event_loop.run(run_ours(args.url, items, args.concurrency, answers, Path(tmp), args.cache, extra))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    ok = sum(answer == f"#{i}" for i, answer in enumerate(answers))
    peak_kib = max(peak_rss_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"client": args.client, "seconds": seconds, "cpu_s": cpu, "peak_rss_mib": peak_kib / 1024,
                      "import_s": import_s, "ok": ok, "n": args.n, **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
