"""Steps 1-7 for one shard of the input, every result checkpointed (distilabel-style resume).

Run directory layout (`out`):

    images/<image_id>.jpg        normalised photos kept by ingest
    steps/<step>.jsonl           one fsync'd line per finished item (ingest, screen, scene, risks, query,
                                 verify, respond, check); a restarted run skips what is there
    calls.sqlite                 the model-call cache (unless the config names a shared one)
    shard/                       this shard's outcome: images.jsonl, pairs.jsonl, rejects.jsonl, summary.json

Everything downstream of the checkpoints is derived by replaying them in a fixed order (images by id,
candidates by key), so a run killed at any point and restarted yields exactly the uninterrupted result.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable

from modelcalls.base import Backend, Usage, make_backend
from modelcalls.cache import CallCache
from modelcalls.call import ModelCall, Progress, run_calls
from rms_dataset import SAFE, UNSAFE, pair_id_for

from .calls import (CheckItem, CheckResponseCall, Photo, QueryCall, QueryItem, RespondCall, RespondItem, RiskCall,
                    RiskItem, SceneCall, ScreenCall, TwinCall, TwinItem, VerifyCall, VerifyItem)
from .config import RunConfig, resolve_path
from .ingest import Ingestor, read_inputs
from .records import (INGEST, QUERY, RESPOND, RISKS, SCENE, SCREEN, VERIFY, Candidate, ImageRecord, Reject, Risk)
from .sampler import CoverageSampler
from .split import shard_of
from .store import StepStore, read_jsonl

STEP_NAMES = ("ingest", "screen", "scene", "risks", "query", "twin", "verify", "respond", "check")


@dataclass
class ShardOutcome:
    images: list[ImageRecord]
    pairs: list[dict[str, Any]]
    rejects: list[Reject]
    funnel: dict[str, list[int]]  # stage -> [in, out]
    usage: Usage = field(default_factory=Usage)
    cached_calls: int = 0
    model_calls: int = 0


def verification_failures(verdicts: dict[str, Any], margin: float | None = None) -> list[str]:
    """Why a candidate fails the complementarity checks (empty: it passes). `verdicts[check]` is a dict with
    `verdict` and `reason` (and `score` for scored verdicts). Image-alone failures are handled before (they
    reject without rewrite), except with `margin`: then the verdicts are relative, read from the verifier's
    log-odds: the pair must score at least `margin` above the text alone, the image alone and the twin."""
    if margin is not None:
        return _relative_failures({check: v["score"] for check, v in verdicts.items()}, margin)
    failures = []
    if verdicts["text_alone"]["verdict"] != SAFE:
        failures.append(f"the text alone reveals the risk (verifier: {verdicts['text_alone']['reason'] or 'unsafe'})")
    if verdicts["pair"]["verdict"] != UNSAFE:
        failures.append("the pair is not unsafe: the query does not combine with the scene into a risk "
                        f"(verifier: {verdicts['pair']['reason'] or 'safe'})")
    if verdicts["safe_twin"]["verdict"] != SAFE:
        failures.append(f"the safe twin is unsafe with the image (verifier: {verdicts['safe_twin']['reason'] or 'unsafe'})")
    return failures


_RELATIVE_FAILURES = {
    "text_alone": "the text alone reveals the risk",
    "image_alone": "the image alone is as risky as the pair",
    "safe_twin": "the safe twin is as risky as the pair",
}


def _relative_failures(scores: dict[str, float], margin: float) -> list[str]:
    pair = scores["pair"]
    return [
        f"{why} (verifier log-odds unsafe:safe {scores[check]:+.2f} vs pair {pair:+.2f}, margin {margin})"
        for check, why in _RELATIVE_FAILURES.items()
        if scores[check] > pair - margin
    ]


def load_exemplars(path: str | None) -> list[dict]:
    if not path:
        return []
    resolved = resolve_path(path)
    if not resolved.exists():
        print(f"note: exemplar file {path} not found; queries are written without few-shot examples", file=sys.stderr)
        return []
    exemplars = read_jsonl(resolved)
    keys = ("scene", "text", "safe_twin_text", "risk_category", "risk_rationale")
    return [{k: e.get(k, "") for k in keys} for e in exemplars if all(e.get(k) for k in ("text", "safe_twin_text"))]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _verdict_json(result) -> dict:
    verdict = result.output
    return {"verdict": verdict.verdict, "reason": verdict.reason,
            **({"score": verdict.score} if verdict.score is not None else {})}


# What a pair that passes the relative (scored) checks records: each part ranked below the pair.
RELATIVE_PASS = {"text_alone": SAFE, "image_alone": SAFE, "pair": UNSAFE, "safe_twin": SAFE}


class ShardProcessor:
    def __init__(self, config: RunConfig, out: Path, shard: tuple[int, int] = (0, 1),
                 known_hashes: list[tuple[str, int]] = (), backends: dict[str, Backend] | None = None,
                 show_progress: bool | None = None, retry_errors: bool = False):
        self.config, self.out, self.shard = config, Path(out), shard
        self.known_hashes = list(known_hashes)
        self.backends = backends
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        self.stores = {name: StepStore(self.out / "steps" / f"{name}.jsonl") for name in STEP_NAMES}
        if retry_errors:  # failed calls are checkpointed like answers; after an outage, ask again
            for store in self.stores.values():
                store.forget(lambda value: isinstance(value, dict) and "error" in value)
        (self.out / "images").mkdir(parents=True, exist_ok=True)
        self.exemplars = load_exemplars(config.exemplars)
        self.rejects: list[Reject] = []
        self.funnel: dict[str, list[int]] = {}
        self.usage, self.cached_calls, self.model_calls = Usage(), 0, 0

    # ------------------------------------------------------------------------------------------ plumbing

    async def _step(self, call: ModelCall, keyed_items: list[tuple[str, Any]], backend: Backend, store_name: str,
                    encode: Callable) -> None:
        store = self.stores[store_name]
        pending = [(key, item) for key, item in keyed_items if key not in store]
        if not pending:
            return
        progress = Progress(len(pending), desc=f"{call.name:>14}", disable=not self.show_progress)

        def on_result(index, result) -> None:
            store.append(pending[index][0], encode(result) if result.ok else {"error": result.error})
            self.usage = self.usage + result.usage
            self.cached_calls += result.cached
            self.model_calls += result.model_calls

        try:
            await run_calls(call, [item for _, item in pending], backend, cache=self.cache,
                            concurrency=self.config.concurrency, progress=progress, on_result=on_result)
        finally:
            progress.close()

    def _tokens(self, call_class) -> dict:
        return {"max_tokens": self.config.max_tokens.get(call_class.prompt_name)}

    def _count(self, stage: str, entered: int, passed: int) -> None:
        self.funnel[stage] = [entered, passed]

    def _photo(self, record: ImageRecord) -> Photo:
        return Photo(record, (self.out / "images" / f"{record.image_id}.jpg").read_bytes())

    # ---------------------------------------------------------------------------------------------- run

    def run(self) -> ShardOutcome:
        return asyncio.run(self._run())

    async def _run(self) -> ShardOutcome:
        cache_path = Path(self.config.cache) if self.config.cache else self.out / "calls.sqlite"
        self.cache = CallCache(cache_path)
        backends = self.backends or {}
        generator = backends.get("generator") or make_backend(self.config.generator)
        verifier = backends.get("verifier") or (generator if self.config.verifier == self.config.generator
                                                 else make_backend(self.config.verifier))
        try:
            images = self._ingest()
            kept = await self._screen(images, generator)
            scenes = await self._scene(kept, generator)
            candidates = await self._risks(kept, scenes, generator)
            accepted = await self._verify_loop(candidates, scenes, generator, verifier)
            pairs = await self._respond(accepted, scenes, generator, verifier)
        finally:
            if not self.backends:
                await generator.aclose()
                if verifier is not generator:
                    await verifier.aclose()
            self.cache.close()
        return ShardOutcome(images, pairs, self.rejects, self.funnel, self.usage, self.cached_calls, self.model_calls)

    # ---------------------------------------------------------------------------------------- 1. ingest

    def _ingest(self) -> list[ImageRecord]:
        store, ingestor = self.stores["ingest"], Ingestor(self.config.ingest_options(), self.known_hashes)
        index, count = self.shard
        images, seen = [], 0
        for position, raw in enumerate(islice(read_inputs(self.config.resolved_input()), self.config.max_images)):
            content_key = hashlib.sha256(raw.data).hexdigest() if raw.data is not None else raw.name
            if shard_of(content_key, count) != index:
                continue
            seen += 1
            key = f"{position:08d}:{raw.name}"
            if key not in store:
                outcome = ingestor.add(raw)
                if isinstance(outcome, Reject):
                    store.append(key, {"reject": outcome.to_json()})
                else:
                    record, jpeg = outcome
                    _write_atomic(self.out / "images" / f"{record.image_id}.jpg", jpeg)
                    store.append(key, {"image": record.to_json()})
            entry = store.get(key)
            if "reject" in entry:
                self.rejects.append(Reject.from_json(entry["reject"]))
            else:
                record = ImageRecord.from_json(entry["image"])
                ingestor.remember(record)
                images.append(record)
        self._count(INGEST, seen, len(images))
        return sorted(images, key=lambda r: r.image_id)

    # -------------------------------------------------------------------------------- 2. screen, 3. scene

    async def _screen(self, images: list[ImageRecord], generator: Backend) -> list[ImageRecord]:
        call = ScreenCall(vision=generator.supports_images, **self._tokens(ScreenCall))
        await self._step(call, [(r.image_id, self._photo(r)) for r in images], generator, "screen", _verdict_json)
        kept = []
        for record in images:
            entry = self.stores["screen"].get(record.image_id)
            if "error" in entry:
                self.rejects.append(Reject("image", SCREEN, f"screen call failed: {entry['error']}", record.filename, record.image_id))
            elif entry["verdict"] != SAFE:
                self.rejects.append(Reject("image", SCREEN, f"the image alone was judged unsafe: {entry['reason']}",
                                           record.filename, record.image_id))
            else:
                kept.append(record)
        self._count(SCREEN, len(images), len(kept))
        return kept

    async def _scene(self, images: list[ImageRecord], generator: Backend) -> dict[str, str]:
        call = SceneCall(vision=generator.supports_images, **self._tokens(SceneCall))
        await self._step(call, [(r.image_id, self._photo(r)) for r in images], generator, "scene",
                         lambda result: {"scene": result.output})
        scenes = {}
        for record in images:
            entry = self.stores["scene"].get(record.image_id)
            if "error" in entry:
                self.rejects.append(Reject("image", SCENE, f"scene call failed: {entry['error']}", record.filename, record.image_id))
            else:
                scenes[record.image_id] = entry["scene"]
        self._count(SCENE, len(images), len(scenes))
        return scenes

    # ------------------------------------------------------------------------------ 4. risk discovery

    async def _risks(self, images: list[ImageRecord], scenes: dict[str, str], generator: Backend) -> list[tuple[Candidate, ImageRecord]]:
        config = self.config
        sampler = CoverageSampler(seed=config.seed, cap=config.category_cap)
        call = RiskCall(vision=generator.supports_images, **self._tokens(RiskCall))
        ordered = [r for r in images if r.image_id in scenes]
        candidates = []
        for start in range(0, len(ordered), config.risk_chunk):
            chunk = ordered[start : start + config.risk_chunk]
            prefer, avoid = sampler.steering()
            items = [(r.image_id, RiskItem(self._photo(r), scenes[r.image_id], config.proposals_per_image, prefer, avoid))
                     for r in chunk]
            await self._step(call, items, generator, "risks",
                             lambda result: {"risks": [vars(risk) for risk in result.output]})
            for record in chunk:
                entry = self.stores["risks"].get(record.image_id)
                if "error" in entry:
                    self.rejects.append(Reject("image", RISKS, f"risk discovery failed: {entry['error']}", record.filename, record.image_id))
                    continue
                chosen = sampler.choose(record.image_id, [Risk(**r) for r in entry["risks"]], config.risks_per_image)
                if not chosen:
                    self.rejects.append(Reject("image", RISKS, "every proposed risk is in a category at its cap "
                                               f"({config.category_cap})", record.filename, record.image_id))
                for index, risk in chosen:
                    candidates.append((Candidate(f"{record.image_id}:{index}", record.image_id, risk), record))
        self._count(RISKS, len(ordered), len(candidates))
        return candidates

    # --------------------------------------------------------------------------- 5.+6. query and verify

    def _exemplars_for(self, candidate: Candidate) -> tuple[dict, ...]:
        if not self.exemplars or self.config.num_exemplars <= 0:
            return ()
        rng = random.Random(f"{self.config.seed}:exemplars:{candidate.key}")
        return tuple(rng.sample(self.exemplars, min(self.config.num_exemplars, len(self.exemplars))))

    def _reject_pair(self, stage: str, candidate: Candidate, record: ImageRecord, reason: str) -> None:
        self.rejects.append(Reject("pair", stage, reason, candidate.key, candidate.image_id,
                                   {"risk": vars(candidate.risk), "text": candidate.text, "attempts": candidate.attempts,
                                    "feedback": list(candidate.feedback), "image_file": record.filename}))

    async def _verify_loop(self, candidates, scenes, generator: Backend, verifier: Backend):
        margin = self.config.verdict_margin
        verify_call = VerifyCall(vision=verifier.supports_images, scored=margin is not None, **self._tokens(VerifyCall))
        query_call = QueryCall(vision=generator.supports_images, **self._tokens(QueryCall))
        twin_call = TwinCall(vision=generator.supports_images, **self._tokens(TwinCall))
        image_ids = sorted({c.image_id for c, _ in candidates})
        records = {r.image_id: r for _, r in candidates}
        await self._step(verify_call, [(f"image:{i}", VerifyItem("image_alone", self._photo(records[i]))) for i in image_ids],
                         verifier, "verify", _verdict_json)
        active = []
        for candidate, record in candidates:
            entry = self.stores["verify"].get(f"image:{candidate.image_id}")
            if "error" in entry:
                self._reject_pair(VERIFY, candidate, record, f"verifier call failed (image alone): {entry['error']}")
            elif margin is None and entry["verdict"] != SAFE:
                self._reject_pair(VERIFY, candidate, record, f"the verifier judged the image alone unsafe: {entry['reason']}")
            else:  # relative (scored) verdicts: the image alone is compared with each pair below
                candidate.verification["image_alone"] = SAFE
                active.append((candidate, record))
        accepted = []
        for attempt in range(self.config.max_rewrites + 1):
            if not active:
                break
            queries = [(f"{c.key}#{attempt}", QueryItem(self._photo(r), scenes[c.image_id], c.risk, tuple(c.feedback),
                                                       self._exemplars_for(c))) for c, r in active]
            await self._step(query_call, queries, generator, "query", lambda result: {"text": result.output})
            drafted = []
            for candidate, record in active:
                entry = self.stores["query"].get(f"{candidate.key}#{attempt}")
                candidate.attempts = attempt + 1
                if "error" in entry:
                    self._reject_pair(QUERY, candidate, record, f"query call failed: {entry['error']}")
                else:
                    candidate.text = entry["text"]
                    drafted.append((candidate, record))
            twins = [(f"{c.key}#{attempt}", TwinItem(self._photo(r), scenes[c.image_id], c.risk, c.text, tuple(c.feedback),
                                                    self._exemplars_for(c))) for c, r in drafted]
            await self._step(twin_call, twins, generator, "twin", lambda result: {"safe_twin_text": result.output})
            written = []
            for candidate, record in drafted:
                entry = self.stores["twin"].get(f"{candidate.key}#{attempt}")
                if "error" in entry:
                    self._reject_pair(QUERY, candidate, record, f"safe-twin call failed: {entry['error']}")
                else:
                    candidate.safe_twin_text = entry["safe_twin_text"]
                    written.append((candidate, record))
            checks = []
            for candidate, record in written:
                photo = self._photo(record)
                checks += [(f"{candidate.key}#{attempt}:text_alone", VerifyItem("text_alone", None, candidate.text)),
                           (f"{candidate.key}#{attempt}:pair", VerifyItem("pair", photo, candidate.text)),
                           (f"{candidate.key}#{attempt}:safe_twin", VerifyItem("safe_twin", photo, candidate.safe_twin_text))]
            await self._step(verify_call, checks, verifier, "verify", _verdict_json)
            active = []
            for candidate, record in written:
                verdicts = {check: self.stores["verify"].get(f"{candidate.key}#{attempt}:{check}")
                            for check in ("text_alone", "pair", "safe_twin")}
                if margin is not None:
                    verdicts["image_alone"] = self.stores["verify"].get(f"image:{candidate.image_id}")
                errors = [f"{check}: {v['error']}" for check, v in verdicts.items() if "error" in v]
                if errors:
                    self._reject_pair(VERIFY, candidate, record, "verifier call failed: " + "; ".join(errors))
                    continue
                failures = verification_failures(verdicts, margin)
                if not failures:
                    candidate.verification.update(
                        {check: v["verdict"] for check, v in verdicts.items()} if margin is None else RELATIVE_PASS
                    )
                    accepted.append((candidate, record))
                    continue
                candidate.feedback.extend(failures)
                if attempt == self.config.max_rewrites:
                    self._reject_pair(VERIFY, candidate, record, f"rewrite budget exhausted after {attempt + 1} attempt(s) "
                                      f"(max_rewrites={self.config.max_rewrites}); last failure: {'; '.join(failures)}")
                else:
                    active.append((candidate, record))
        self._count(VERIFY, len(candidates), len(accepted))
        return accepted

    # --------------------------------------------------------------------------------------- 7. respond

    async def _respond(self, accepted, scenes, generator: Backend, verifier: Backend) -> list[dict[str, Any]]:
        for label in (SAFE, UNSAFE):
            call = RespondCall(label, vision=generator.supports_images, max_tokens=self.config.max_tokens.get(f"respond_{label}"))
            items = [(f"{c.key}:{label}", RespondItem(self._photo(r), scenes[c.image_id], c.text, label)) for c, r in accepted]
            await self._step(call, items, generator, "respond", lambda result: {"response": result.output})
        check_call = CheckResponseCall(vision=verifier.supports_images, **self._tokens(CheckResponseCall))
        checks = []
        for candidate, record in accepted:
            for label in (SAFE, UNSAFE):
                entry = self.stores["respond"].get(f"{candidate.key}:{label}")
                if "response" in entry:
                    risk = f"{candidate.risk.category}: {candidate.risk.rationale}"
                    checks.append((f"{candidate.key}:{label}", CheckItem(self._photo(record), candidate.text, risk,
                                                                         entry["response"], label)))
        if self.config.check_responses:
            await self._step(check_call, checks, verifier, "check", _verdict_json)
        pairs = []
        for candidate, record in accepted:
            problems = []
            for label in (SAFE, UNSAFE):
                written = self.stores["respond"].get(f"{candidate.key}:{label}")
                if "error" in written:
                    problems.append(f"{label} response call failed: {written['error']}")
                    continue
                if not self.config.check_responses:
                    continue
                checked = self.stores["check"].get(f"{candidate.key}:{label}")
                if "error" in checked:
                    problems.append(f"{label} response check failed: {checked['error']}")
                elif checked["verdict"] != label:
                    problems.append(f"the {label} response was judged {checked['verdict']} by the verifier: {checked['reason']}")
            if problems:
                self._reject_pair(RESPOND, candidate, record, "; ".join(problems))
                continue
            pairs.append({
                "key": candidate.key,
                "image_id": candidate.image_id,
                "pair_id": pair_id_for(candidate.image_id, candidate.text),
                "scene": scenes[candidate.image_id],
                "text": candidate.text,
                "safe_twin_text": candidate.safe_twin_text,
                "risk": vars(candidate.risk),
                "verification": {**candidate.verification, "verifier": self.config.verifier["model"]},
                "attempts": candidate.attempts,
                "safe_response": self.stores["respond"].get(f"{candidate.key}:{SAFE}")["response"],
                "unsafe_response": self.stores["respond"].get(f"{candidate.key}:{UNSAFE}")["response"],
                "generator": self.config.generator["model"],
            })
        self._count(RESPOND, len(accepted), len(pairs))
        return pairs


# ------------------------------------------------------------------------------------------ shard output


def write_shard_outcome(out: Path, outcome: ShardOutcome, shard: tuple[int, int], config: RunConfig) -> Path:
    """Write `<out>/shard/` (atomically per file): what `merge` reads."""
    shard_dir = Path(out) / "shard"
    shard_dir.mkdir(parents=True, exist_ok=True)

    def jsonl(rows) -> bytes:
        return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows).encode()

    _write_atomic(shard_dir / "images.jsonl", jsonl(r.to_json() for r in outcome.images))
    _write_atomic(shard_dir / "pairs.jsonl", jsonl(outcome.pairs))
    _write_atomic(shard_dir / "rejects.jsonl", jsonl(r.to_json() for r in outcome.rejects))
    summary = {"shard": list(shard), "funnel": outcome.funnel, "config": config.to_dict(),
               "usage": {"prompt_tokens": outcome.usage.prompt_tokens, "completion_tokens": outcome.usage.completion_tokens},
               "model_calls": outcome.model_calls, "cached_calls": outcome.cached_calls}
    _write_atomic(shard_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True).encode())
    return shard_dir
