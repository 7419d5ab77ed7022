"""The model-call layer against the physical limit, bare HTTP clients and peer tools, plus its fault,
resume and replica behaviour. Prints one markdown table; every row comes from this one run.

    python bench/generation_calls.py                       # the table in BENCHMARKS.md
    python bench/generation_calls.py --n 400 --rounds 1    # a quick look

A stub chat-completions server (``bench/stub_server.py``, own process, 127.0.0.1) answers every request
after ``--delay-ms`` (50). Each client (``bench/call_clients.py``) runs in a process of its own, so import
time, client CPU and peak RSS are its own. With two CPUs or more the stub runs on the last CPU and the
clients on the others (as servers on other machines would), so client and stub never fight for one core.

(1) limit: N prompts at concurrency C; the physical limit is N x delay / C seconds. Rows: ours
    (``run_calls`` + ``OpenAIBackend`` + ``CallCache``, cache on), bare pyreqwest / aiohttp / httpx2 / httpx (default
    pool and C/8 connections in each of 8 clients) / openai SDK loops, and the peers curator and distilabel;
    ours and bare aiohttp also on the other event loop (``ours@asyncio``, ``aiohttp@uvloop``), and "x of
    aiohttp" is against bare aiohttp on the row's own loop (ours' note: against bare pyreqwest, the client it
    is built on, on its loop). The peers,
    run with the Python of their own virtualenv (``--python curator=/tmp/peers/curator/bin/python``; a peer
    whose Python is missing or cannot import it is skipped, saying so). Rounds alternate the clients in a
    rotating order; "x of aiohttp" is the median of the per-round ratios, so a neighbour's load that
    drifts over the run does not pick the winner. A client (other than those) slower than 8x the
    limit in round 1 is not repeated. Every client runs at the first ``--concurrency``; at the others only ours, aiohttp
    and pyreqwest, unless ``--all-clients-everywhere``.
(2) faults: the same N with 20 % of requests answered 429 + Retry-After: 1. All N must come back correct;
    the time is set against 1.5 x the fault-free time + the Retry-After waits spread over the C workers
    (429s x Retry-After / C), and the requests the server saw are counted (no retry storm: ~1.25 N).
(3) resume: a finished run repeated on its cache, in a new process: model calls (server-side count) and
    its time against the first run's (server delay ``--resume-delay-ms``, a stand-in for a real model).
(4) replicas: the same N over two stub servers, one of which stops after a quarter of the requests: every
    item answered once and correctly; requests per replica, failovers and ejections as the backend reports them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stub_server import StubProcess, split_cpus  # noqa: E402

# A client runs on its default event loop (ours: uvloop when installed; the others: asyncio's) or on the
# one named after "@".
CLIENT_ORDER = ["ours", "ours@asyncio", "aiohttp", "aiohttp@uvloop", "pyreqwest@uvloop", "pyreqwest", "httpx2", "httpx-sharded", "openai", "httpx",
                "curator", "distilabel"]
# At every concurrency: the ratio targets (ours against bare aiohttp) and the bare client ours is built on.
RATIO_CLIENTS = ("ours", "ours@asyncio", "aiohttp", "aiohttp@uvloop", "pyreqwest@uvloop", "pyreqwest")
LABELS = {
    "ours": "ours: run_calls + OpenAIBackend (pyreqwest) + CallCache, cache on",
    "ours@asyncio": "ours, on asyncio's own loop (RMS_EVENT_LOOP=asyncio)",
    "aiohttp": "bare aiohttp loop",
    "aiohttp@uvloop": "bare aiohttp loop on uvloop",
    "pyreqwest@uvloop": "bare pyreqwest loop on uvloop",
    "pyreqwest": "bare pyreqwest loop",
    "httpx2": "bare httpx2 loop",
    "httpx-sharded": "bare httpx loop, tuned: 8 clients x C/8 connections",
    "openai": "bare openai SDK loop (AsyncOpenAI)",
    "httpx": "bare httpx loop (one pool of C)",
    "curator": "bespokelabs-curator LLM, cache on",
    "distilabel": "distilabel OpenAILLM.agenerate loop",
}
DEFAULT_PEER_PYTHON = {"curator": "/tmp/peers/curator/bin/python", "distilabel": "/tmp/peers/distilabel/bin/python"}



def run_client(python: str, client: str, url: str, n: int, concurrency: int, tag: str,
               cache: Path | None = None, timeout: float = 900) -> dict | str:
    """Run one client (``NAME`` or ``NAME@LOOP``) in its own process; its JSON result, or the reason it was
    skipped."""
    name, _, loop = client.partition("@")
    command = [python, str(HERE / "call_clients.py"), name, "--url", url, "--n", str(n),
               "--concurrency", str(concurrency), "--tag", f"{tag}-{loop}" if loop else tag]
    if loop:
        command += ["--loop", loop]
    if cache is not None:
        command += ["--cache", str(cache)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # call_clients keeps peers offline
    client_cpus = split_cpus()[0]
    pin = (lambda: os.sched_setaffinity(0, client_cpus)) if client_cpus else None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=pin)
    except subprocess.TimeoutExpired:
        return f"skipped {client}: no result within {timeout:.0f} s"
    if done.returncode == 3:
        return done.stderr.strip().splitlines()[-1]
    if done.returncode != 0:
        raise RuntimeError(f"{client} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["ok"] != n:
        raise RuntimeError(f"{client}: only {result['ok']} of {n} answers belong to their prompt")
    return result


def python_for(client: str, peers: dict[str, str]) -> str | None:
    python = peers.get(client.partition("@")[0], sys.executable)
    return python if Path(python).exists() else None


# ------------------------------------------------------------------------------------------------ (1)

def limit_rows(stub: StubProcess, args, peers: dict[str, str], concurrency: int, n: int, notes: list[str],
               client_names: list[str]) -> list[dict]:
    stub.configure(delay_ms=args.delay_ms, rate_limited=0)
    limit = n * args.delay_ms / 1000 / concurrency
    runs: dict[str, list[dict]] = {}
    clients = []
    for client in client_names:
        python = python_for(client, peers)
        if python is None:
            notes.append(f"skipped {client}: {peers.get(client)} not found (make its virtualenv: "
                         f"python -m venv /tmp/peers/{client} && /tmp/peers/{client}/bin/pip install "
                         f"{'bespokelabs-curator' if client == 'curator' else 'distilabel[openai] requests'})")
            continue
        clients.append(client)
    slow: set[str] = set()
    for round_number in range(args.rounds):
        shift = round_number % len(clients)
        for client in clients[shift:] + clients[:shift]:
            if client in slow or (round_number and client not in runs):
                continue
            result = run_client(python_for(client, peers), client, stub.base_url, n, concurrency,
                                f"c{concurrency}-r{round_number}")
            if isinstance(result, str):
                if round_number == 0:
                    notes.append(result)
                continue
            runs.setdefault(client, []).append(result)
            if round_number == 0 and result["seconds"] > 8 * limit and client not in RATIO_CLIENTS:
                slow.add(client)
    rows = []
    for client in CLIENT_ORDER:
        if client not in runs:
            continue
        results = runs[client]
        seconds = statistics.median(r["seconds"] for r in results)
        what = LABELS[client] + (f", on {results[0]['loop']}" if client == "ours" else "")
        row = {"section": "(1) limit", "what": what, "n": n, "c": concurrency, "seconds": seconds,
               "of_limit": limit / seconds, "cpu_us": 1e6 * statistics.median(r["cpu_s"] for r in results) / n,
               "rss": max(r["peak_rss_mib"] for r in results), "import_s": statistics.median(r["import_s"] for r in results),
               "rounds": len(results), "note": ""}
        reference = "aiohttp@uvloop" if results[0].get("loop") == "uvloop" else "aiohttp"  # the same loop
        if client != reference and reference in runs:
            ratios = [a["seconds"] / r["seconds"] for a, r in zip(runs[reference], results)]
            row["of_aiohttp"] = statistics.median(ratios)
        own_client = "pyreqwest@uvloop" if results[0].get("loop") == "uvloop" else "pyreqwest"
        if client.startswith("ours") and own_client in runs:  # what the call layer adds to its HTTP client
            ratios = [b["seconds"] / r["seconds"] for b, r in zip(runs[own_client], results)]
            row["note"] = f"{statistics.median(ratios):.2f} of bare {LABELS[own_client].removeprefix('bare ')}"
        rows.append(row)
    rows.insert(0, {"section": "(1) limit", "what": f"physical limit: N x {args.delay_ms:g} ms / C", "n": n,
                    "c": concurrency, "seconds": limit, "of_limit": 1.0, "note": ""})
    return rows


# ------------------------------------------------------------------------------------------------ (2)

def fault_rows(stub: StubProcess, args, concurrency: int, n: int) -> list[dict]:
    stub.configure(delay_ms=args.delay_ms, rate_limited=0)
    stub.reset()
    free = run_client(sys.executable, "ours", stub.base_url, n, concurrency, "faults-free")
    free_seen = stub.stats()["requests"]
    stub.configure(rate_limited=0.2, retry_after=1)
    stub.reset()
    faulty = run_client(sys.executable, "ours", stub.base_url, n, concurrency, "faults-429")
    stats = stub.stats()
    stub.configure(rate_limited=0)
    waits = stats["rate_limited"] * 1.0 / concurrency
    allowed = 1.5 * free["seconds"] + waits
    return [
        {"section": "(2) faults", "what": "ours, no faults", "n": n, "c": concurrency, "seconds": free["seconds"],
         "note": f"{free['ok']}/{n} correct; server saw {free_seen} requests"},
        {"section": "(2) faults", "what": "ours, 20 % answered 429 + Retry-After: 1", "n": n, "c": concurrency,
         "seconds": faulty["seconds"],
         "note": (f"{faulty['ok']}/{n} correct; server saw {stats['requests']} requests = {stats['requests'] / n:.2f} N "
                  f"({stats['rate_limited']} answered 429); allowed 1.5 x {free['seconds']:.2f} s + "
                  f"{stats['rate_limited']} x 1 s / {concurrency} = {allowed:.2f} s: "
                  f"{'met' if faulty['seconds'] <= allowed else 'NOT met'} ({faulty['seconds'] / allowed:.2f} of allowed)")},
    ]


# ------------------------------------------------------------------------------------------------ (3)

def resume_rows(stub: StubProcess, args, concurrency: int, n: int, workdir: Path) -> list[dict]:
    stub.configure(delay_ms=args.resume_delay_ms, rate_limited=0)
    cache = workdir / "resume.sqlite"
    first = run_client(sys.executable, "ours", stub.base_url, n, concurrency, "resume", cache=cache)
    before = stub.stats()["requests"]
    again = run_client(sys.executable, "ours", stub.base_url, n, concurrency, "resume", cache=cache)
    calls = stub.stats()["requests"] - before
    share = again["seconds"] / first["seconds"]
    return [
        {"section": "(3) resume", "what": f"ours, first run, server delay {args.resume_delay_ms:g} ms", "n": n,
         "c": concurrency, "seconds": first["seconds"], "note": f"{first['model_calls']} model calls"},
        {"section": "(3) resume", "what": "ours, the same run again on its cache (new process)", "n": n,
         "c": concurrency, "seconds": again["seconds"],
         "note": (f"{calls} model calls (server count), {again['cached']}/{n} from the cache; {100 * share:.2f} % of "
                  f"the first run: {'met' if calls == 0 and share <= 0.02 else 'NOT met'} (0 calls, <= 2 %)")},
    ]


# ------------------------------------------------------------------------------------------------ (4)

def replica_rows(args, concurrency: int, n: int) -> list[dict]:
    with StubProcess(delay_ms=args.delay_ms, pin=True) as steady, \
            StubProcess(delay_ms=args.delay_ms, stop_after=n // 4, pin=True) as dying:
        result = run_client(sys.executable, "ours", f"{steady.base_url},{dying.base_url}", n, concurrency, "replicas")
        served = steady.stats()["answered"]
    replicas = {r["url"]: r for r in result["replicas"]["replicas"]}
    kept, lost = replicas[steady.base_url], replicas[dying.base_url]
    return [{
        "section": "(4) replicas", "what": "ours over 2 replicas, one stops after N/4 answers", "n": n, "c": concurrency,
        "seconds": result["seconds"], "of_limit": n * args.delay_ms / 1000 / concurrency / result["seconds"],
        "note": (f"{result['ok']}/{n} items answered once and correctly; steady replica answered {served} "
                 f"(backend: {kept['requests']} sent), stopped one {lost['answered']} answered of {lost['requests']} sent, "
                 f"{lost['failures']} connection failures, taken out {lost['ejections']}x; "
                 f"{result['replicas']['failovers']} requests failed over at once")}]


# ---------------------------------------------------------------------------------------------- table

def fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="prompts per client run in (1), (2) and (4)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256], help="(1) runs once per value")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="stub server delay in (1), (2), (4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (1): every client once per round")
    parser.add_argument("--clients", nargs="+", default=CLIENT_ORDER, choices=CLIENT_ORDER)
    parser.add_argument("--all-clients-everywhere", action="store_true",
                        help="run every client at every --concurrency (default: all at the first, then ours, aiohttp and pyreqwest)")
    parser.add_argument("--python", action="append", default=[], metavar="CLIENT=PYTHON",
                        help="the Python to run a peer with (default: curator/distilabel from /tmp/peers/<peer>)")
    parser.add_argument("--resume-n", type=int, default=1000, help="prompts in (3)")
    parser.add_argument("--resume-delay-ms", type=float, default=500.0, help="server delay of the first run in (3)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["limit", "faults", "resume", "replicas"])
    args = parser.parse_args()
    peers = dict(DEFAULT_PEER_PYTHON)
    for option in args.python:
        client, _, python = option.partition("=")
        if client not in CLIENT_ORDER or "@" in client or not python:
            parser.error(f"--python {option!r}: expected CLIENT=PATH with CLIENT one of {CLIENT_ORDER}")
        peers[client] = python

    rows, notes = [], []
    main_c = args.concurrency[0]
    with StubProcess(delay_ms=args.delay_ms, pin=True) as stub, tempfile.TemporaryDirectory() as tmp:
        if "limit" not in args.skip:
            clients = args.clients
            for concurrency in args.concurrency:
                rows += limit_rows(stub, args, peers, concurrency, args.n, notes, clients)
                if not args.all_clients_everywhere:  # the ratio targets need only ours, aiohttp and pyreqwest
                    clients = [client for client in clients if client in RATIO_CLIENTS]
        if "faults" not in args.skip:
            rows += fault_rows(stub, args, main_c, args.n)
        if "resume" not in args.skip:
            rows += resume_rows(stub, args, main_c, args.resume_n, Path(tmp))
    if "replicas" not in args.skip:
        rows += replica_rows(args, main_c, args.n)

    clients_on, stub_on = split_cpus()
    pinned = f"clients on CPU {sorted(clients_on)}, stub on CPU {sorted(stub_on)}" if stub_on else "not pinned"
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs ({pinned}), Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    header = ["section", "measurement", "N", "C", "seconds", "x of limit", "x of aiohttp", "client CPU us/call",
              "peak RSS MiB", "import s", "notes"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        note = row.get("note", "")
        if row.get("rounds"):
            note = f"median of {row['rounds']} rounds" + (f"; {note}" if note else "")
        cells = [row["section"], row["what"], str(row["n"]), str(row["c"]), fmt(row.get("seconds"), ".2f"),
                 fmt(row.get("of_limit"), ".2f"), fmt(row.get("of_aiohttp"), ".2f"), fmt(row.get("cpu_us"), ",.0f"),
                 fmt(row.get("rss"), ".0f"), fmt(row.get("import_s"), ".2f"), note]
        print("| " + " | ".join(cells) + " |")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
