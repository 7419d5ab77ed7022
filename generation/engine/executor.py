"""The executor: runs the pipeline (steps/pipeline.py) on one shard of the input. It owns everything the steps do
not know about: the pending filter, ``modelcalls.run_calls``, fingerprinted checkpoints with group commit,
turning failed calls into rejects, the funnel and the shard outcome.

Run directory layout (`out`):

    images/<image_id>.jpg           normalised photos kept by ingest
    thumbnails/<image_id>.jpg       their small previews (the gallery's; never released)
    steps/<step>-<fingerprint>.jsonl  one line per finished item ({"ok": answer} or {"error": why}); a
                                    restarted run skips what is there; other fingerprints' files are old
                                    checkpoints, reused when the run goes back to their config
    calls.sqlite                    the model-call cache (unless the config names a shared one)
    shard/                          this shard's outcome: images.jsonl, pairs.jsonl, rejects.jsonl, summary.json

Everything downstream of the checkpoints is derived by replaying them in a fixed order (images by id,
candidates by key), so a run killed at any point and restarted yields exactly the uninterrupted result.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from atomic_files import DamagedFile, write_atomic
from generation.steps.base import GENERATOR, VERIFIER, Dropped, Kept, ModelStep, Photo, Retry
from generation.steps.ingest import NORMALISE_VERSION, Ingest, Ingestor, RawImage
from generation.steps.pipeline import pipeline
from generation.steps.rewrite import Rewrite
from modelcalls import event_loop
from modelcalls.base import Backend, Usage, make_backend
from modelcalls.cache import CallCache
from modelcalls.call import Progress, run_calls
from rms_dataset import SAFE, UNSAFE, image_id_for, pair_id_for
from typed_config import ConfigError

from . import fingerprint as fp
from .call_account import CallAccount, cause_of
from .config import RunConfig, resolve_path
from .records import INGEST, Candidate, ImageRecord, Reject
from .sharding import shard_of
from .store import StepStore, read_jsonl


if TYPE_CHECKING:
    from generation.plan import Plan

INGEST_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
INGEST_WINDOW = 4 * INGEST_WORKERS  # inputs normalised ahead of the one being admitted (bounds memory)


@dataclass
class ShardOutcome:
    images: list[ImageRecord]
    pairs: list[dict[str, Any]]
    rejects: list[Reject]
    funnel: dict[str, list[int]]  # step -> [in, out]
    usage: Usage = field(default_factory=Usage)
    cached_calls: int = 0
    model_calls: int = 0
    model_calls_by_step: dict[str, int] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # step -> fingerprint of the checkpoint used
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # call -> template version and sha256 used
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> what its backend served (model_identity)
    calls: CallAccount = field(default_factory=CallAccount)


def model_identity(role_spec: dict[str, Any]) -> dict[str, Any]:
    """What a role's answers came from, for provenance: the backend kind, the model id and, when the
    backend knows it, what it serves (the Hub commit or local weights' fingerprint loaded, the weights its
    servers name)."""
    identity = {"backend": role_spec.get("backend"), "model": role_spec.get("model")}
    if "loaded" in role_spec:
        identity["loaded"] = role_spec["loaded"]
    return identity


def load_exemplars(path: str | None) -> list[dict]:
    if not path:
        return []
    resolved = resolve_path(path)
    if not resolved.exists():
        print(f"note: exemplar file {path} not found; queries are written without few-shot examples", file=sys.stderr)
        return []
    keys = ("scene", "text", "safe_twin_text", "risk_category", "risk_rationale")
    return [{k: e.get(k, "") for k in keys} for e in read_jsonl(resolved) if all(e.get(k) for k in ("text", "safe_twin_text"))]


def _a_call_outcome(value: Any) -> bool:
    """A model step's checkpoint value: {"ok": answer} or {"error": why}."""
    return isinstance(value, dict) and (value.keys() == {"ok"} or value.keys() == {"error"} and isinstance(value["error"], str))


def _an_ingest_outcome(value: Any) -> bool:
    """Ingest's checkpoint value: {"image": record} or {"reject": reject}."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("image") or value.get("reject"), dict)


class RunState:
    """What steps read while building their items: photos, scenes, exemplars (never where they run)."""

    def __init__(self, config: RunConfig, out: Path):
        self.config, self.out = config, out
        self.records: dict[str, ImageRecord] = {}
        self.scenes: dict[str, str] = {}
        self.exemplars = load_exemplars(config.exemplars)
        self.photos: dict[str, Photo] = {}  # one per image: every step asks for it again

    def photo(self, record: ImageRecord) -> Photo:
        photo = self.photos.get(record.image_id)
        if photo is None:
            photo = self.photos[record.image_id] = Photo(record, self.out / "images" / f"{record.image_id}.jpg")
        return photo

    def photo_of(self, candidate: Candidate) -> Photo:
        return self.photo(self.records[candidate.image_id])

    def exemplars_for(self, candidate: Candidate) -> tuple[dict, ...]:
        if not self.exemplars or self.config.num_exemplars <= 0:
            return ()
        rng = random.Random(f"{self.config.seed}:exemplars:{candidate.key}")
        return tuple(rng.sample(self.exemplars, min(self.config.num_exemplars, len(self.exemplars))))


class Executor:
    def __init__(self, config: RunConfig, out: Path, shard: tuple[int, int] = (0, 1),
                 known_hashes: Callable[[], list[tuple[str, int]]] = list, backends: dict[str, Backend] | None = None,
                 show_progress: bool | None = None, retry_errors: bool = False, steps: list | None = None,
                 plan: Plan | None = None):
        self.config, self.out, self.shard = config, Path(out), shard
        self.plan = plan  # photos to drop at ingest as duplicates of another shard's (generation/plan.py)
        self.read_known_hashes = known_hashes  # (image_id, dhash) of a base release: read only when the run is not done
        self.known_hashes: list[tuple[str, int]] = []
        self.given_backends = backends
        self.show_progress = sys.stderr.isatty() if show_progress is None else show_progress
        self.retry_errors = retry_errors
        self.steps = steps if steps is not None else pipeline()
        for folder in ("images", "thumbnails"):
            (self.out / folder).mkdir(parents=True, exist_ok=True)
        self.state = RunState(config, self.out)
        self.rejects: list[Reject] = []
        self.funnel: dict[str, list[int]] = {}
        self.usage, self.cached_calls, self.model_calls = Usage(), 0, 0
        self.calls_by_step: Counter = Counter()
        self.fingerprints: dict[str, str] = {}
        self.prompts: dict[str, dict[str, str]] = {}
        self.identities: dict[str, dict[str, Any] | None] = {}  # role -> what its backend serves (when a run starts)
        self.calls = CallAccount()

    # ---------------------------------------------------------------------------------------------- run

    def run(self, done: Callable[[dict[str, dict[str, Any]]], bool] | None = None) -> ShardOutcome | None:
        """Run the shard and return its outcome. `done`, given what each role's backend serves (as
        `ShardOutcome.models` records it), may say the run is already done (`run_stamp.RunStamp`): then nothing
        else is done (no input read, no checkpoint replayed) and None is returned."""
        return event_loop.run(self._run(done))

    async def _run(self, done) -> ShardOutcome | None:
        source, *steps = self.steps
        if not isinstance(source, Ingest):
            raise TypeError(f"the pipeline must start with Ingest, got {type(source).__name__}")
        self.cache = CallCache(Path(self.config.cache) if self.config.cache else self.out / "calls.sqlite")
        self.backends = self._backends()
        try:
            self.identities = {role: await self._identify(role) for role in (GENERATOR, VERIFIER)}
            if done is not None and done(self.models()):
                return None
            self.known_hashes = list(self.read_known_hashes())
            subjects, upstream = self._ingest(source)
            images = list(subjects)
            for step in steps:
                if isinstance(step, Rewrite):
                    subjects, upstream = await self._rewrite(step, subjects, upstream)
                elif step.enabled(self.config):
                    step.setup(self.config)
                    outcomes, upstream = await self._step(step, subjects, upstream)
                    subjects = self._apply(step, outcomes)
        finally:
            if not self.given_backends:
                for backend in {id(b): b for b in self.backends.values()}.values():
                    await backend.aclose()
            self.cache.close()
        pairs = [self._pair(candidate) for candidate in subjects]
        return ShardOutcome(images, pairs, self.rejects, self.funnel, self.usage, self.cached_calls, self.model_calls,
                            dict(self.calls_by_step), self.fingerprints, self.prompts,
                            self.models(), self.calls)

    def models(self) -> dict[str, dict[str, Any]]:
        """role -> what its backend serves (`model_identity`)."""
        return {role: model_identity(self._role_spec(role)) for role in (GENERATOR, VERIFIER)}

    def _backends(self) -> dict[str, Backend]:
        given = self.given_backends or {}
        generator = given.get(GENERATOR) or make_backend(self.config.generator.backend_spec())
        verifier = given.get(VERIFIER) or (generator if self.config.verifier == self.config.generator
                                           else make_backend(self.config.verifier.backend_spec()))
        return {GENERATOR: generator, VERIFIER: verifier}

    async def _identify(self, role: str) -> dict[str, Any] | None:
        identify = getattr(self.backends[role], "identify", None)  # optional (modelcalls.base.Backend)
        try:
            return await identify() if identify is not None else None
        except ValueError as error:  # e.g. replicas serving different weights under one name
            raise ConfigError(f"{role}: {error}") from None

    def _role_spec(self, role: str) -> dict[str, Any]:
        """The role's config block plus what its backend reports it serves (``identify()``: the Hub commit
        or the local weights' fingerprint loaded, the weights a server names), so that new weights under the
        same name never reuse a checkpoint or a cached answer."""
        spec = getattr(self.config, role).model_dump(mode="json", exclude_none=True)
        identity = self.identities[role]
        return {**spec, "loaded": identity} if identity else spec

    def _store(self, name: str, fingerprint: str, valid) -> StepStore:
        store = StepStore(self.out / "steps" / f"{name}-{fingerprint[:16]}.jsonl", valid=valid)
        if self.retry_errors:  # failed calls (gate failures included) are checkpointed as failures: ask again
            store.forget(lambda value: "error" in value)
        return store

    def _count(self, name: str, entered: int, passed: int) -> None:
        row = self.funnel.setdefault(name, [0, 0])
        row[0] += entered
        row[1] += passed

    # ---------------------------------------------------------------------------------------- ingest

    def _ingest(self, source: Ingest) -> tuple[list[ImageRecord], str]:
        """Every input of this shard once: a kept ImageRecord (its JPEG under images/) or a reject. Each
        outcome is keyed by position, name and a hash chained over the content of every input so far.

        Inputs are normalised in a few threads, `INGEST_WINDOW` ahead of the one being admitted (PIL
        releases the GIL while decoding, resizing and encoding); dedup admits them one at a time in input
        order, so the outcome does not depend on the threads. Group commit: a photo's JPEG is written
        (atomically, not fsynced) before its checkpoint line, and the lines are committed in batches with
        one fsync. A checkpointed photo whose file is missing or does not hash to its id (lost in a power
        failure, or deleted) is ingested again."""
        planned = self.plan.for_shard(self.config, self.known_hashes, self.shard) if self.plan else {}
        fingerprint = fp.digest({"ingest": source.params(self.config, self.known_hashes), "shard": list(self.shard),
                                 **({"plan": planned} if planned else {})})
        store = self._store(source.name, fingerprint, _an_ingest_outcome)
        ingestor = Ingestor(self.config.ingest_options(), self.known_hashes)
        images, seen, window, chain = [], 0, deque(), hashlib.sha256(fingerprint.encode())

        def admit(key: str, raw, normalising) -> None:
            if normalising is not None:
                outcome = ingestor.admit(raw, normalising.result())
                if not isinstance(outcome, Reject) and outcome[0].image_id in planned:  # still counts for this shard's dedup
                    record = outcome[0]
                    outcome = Reject("image", INGEST, f"duplicate of {planned[record.image_id]} in another shard (found "
                                     "by the plan)", raw.name, record.image_id, {"cause": "duplicate", "planned": record.to_json()})
                if isinstance(outcome, Reject):
                    value = {"reject": outcome.to_json()}
                else:
                    record, jpeg = outcome
                    write_atomic(self.out / "images" / f"{record.image_id}.jpg", jpeg, durable=False)
                    write_atomic(self.out / "thumbnails" / f"{record.image_id}.jpg", normalising.result().thumbnail,
                                 durable=False)
                    value = {"image": record.to_json()}
                store.replace(key, value)  # `add`, unless this is a re-ingest after a lost file
            entry = store.get(key)
            if "reject" in entry:
                reject = Reject.from_json(entry["reject"])
                if normalising is None and "planned" in reject.details:  # resumed: it still counts for dedup
                    ingestor.remember(ImageRecord.from_json(reject.details["planned"]))
                self.rejects.append(reject)
            else:
                record = ImageRecord.from_json(entry["image"])
                if normalising is None:  # resumed from the checkpoint (`admit` remembered a new photo itself)
                    ingestor.remember(record)
                images.append(record)

        with ThreadPoolExecutor(INGEST_WORKERS, thread_name_prefix="ingest") as pool:
            for key, raw in self._ingest_keys(source, chain):
                seen += 1
                normalising = pool.submit(ingestor.normalise, raw) if not self._ingested(store, key) else None
                window.append((key, raw, normalising))
                if len(window) > INGEST_WINDOW:
                    admit(*window.popleft())
            while window:
                admit(*window.popleft())
        store.commit()
        self._count(source.name, seen, len(images))
        upstream = chain.hexdigest()
        self.fingerprints[source.name] = upstream
        images.sort(key=lambda r: r.image_id)
        self.state.records = {r.image_id: r for r in images}
        return images, upstream

    def _ingest_keys(self, source: Ingest, chain) -> Iterator[tuple[str, RawImage]]:
        """(checkpoint key, input) for every input of this shard, in input order; `chain` (a sha256) is
        updated with each one (its final digest is the fingerprint every later step chains on)."""
        index, count = self.shard
        for position, raw in enumerate(source.inputs(self.config)):
            content = hashlib.sha256(raw.data).hexdigest() if raw.data is not None else raw.name
            if shard_of(content, count) != index:
                continue
            provenance = (raw.source, raw.license, raw.attribution, raw.description, raw.error)
            chain.update(json.dumps([position, raw.name, content, *provenance]).encode())
            yield f"{position:08d}:{raw.name}:{chain.hexdigest()[:16]}", raw

    def _ingested(self, store: StepStore, key: str) -> bool:
        """Whether the input under `key` is checkpointed, with its photo's file intact when it was kept."""
        entry = store.get(key)
        if entry is None:
            return False
        if "image" not in entry:
            return True
        image_id = entry["image"]["image_id"]
        try:
            return image_id_for((self.out / "images" / f"{image_id}.jpg").read_bytes()) == image_id
        except OSError:
            return False

    # ------------------------------------------------------------------------------------- model steps

    def _fingerprint(self, step: ModelStep, upstream: str) -> tuple[str, Any]:
        role_spec = self._role_spec(step.role)
        call = step.make_call(self.config, self.backends[step.role].supports_images, fp.answer_digest(role_spec))
        self.prompts[call.name] = {"version": call.prompt.version, "sha256": call.prompt.digest}
        return fp.digest(fp.step_payload(step, call, role_spec, self.config, upstream)), call

    async def _step(self, step: ModelStep, subjects: list, upstream: str, *, loop: str = "") -> tuple[list, str]:
        """Run `step` over `subjects` (in rounds of `step.chunk_size`): only the keys not checkpointed yet
        go to the model. Returns [(subject, Outcome)] in subject order and the step's fingerprint."""
        fingerprint, call = self._fingerprint(step, upstream)
        if loop:  # inside Rewrite: a later attempt depends on every call of the loop
            fingerprint = fp.digest([fingerprint, loop])
        self.fingerprints[step.name] = fingerprint
        store = self._store(step.name, fingerprint, _a_call_outcome)
        backend = self.backends[step.role]
        size = step.chunk_size(self.config) or max(len(subjects), 1)
        outcomes = []
        for start in range(0, len(subjects), size):
            part = subjects[start : start + size]
            works = step.work_for(part, self.state)
            pending: dict[str, Any] = {}
            for work in works:
                for key, item in work:
                    if key not in store and key not in pending:
                        pending[key] = item
            if pending:
                await self._call(step, call, backend, store, pending)
            for subject, work in zip(part, works):
                values = [store.get(key) for key, _ in work]
                for value in values:
                    self.calls.count(value)
                errors = [value["error"] for value in values if "error" in value]
                if errors:
                    outcomes.append((subject, Dropped(f"{step.failure}: {'; '.join(errors)}", cause_of(errors[0]))))
                else:
                    outcomes.append((subject, step.accept(subject, [value["ok"] for value in values], self.state)))
        return outcomes, fingerprint

    async def _call(self, step: ModelStep, call, backend: Backend, store: StepStore, pending: dict[str, Any]) -> None:
        keys, items = list(pending), list(pending.values())
        progress = Progress(len(items), desc=f"{step.name:>14}", disable=not self.show_progress)

        def on_result(index, result) -> None:
            store.add(keys[index], {"ok": step.encode(result.output)} if result.ok else {"error": result.error})
            self.usage = self.usage + result.usage
            self.cached_calls += result.cached
            self.model_calls += result.model_calls
            self.calls_by_step[step.name] += result.model_calls

        try:
            await run_calls(call, items, backend, cache=self.cache, concurrency=self.config.concurrency,
                            progress=progress, on_result=on_result)
        finally:
            store.commit()
            progress.close()

    def _apply(self, step, outcomes: list) -> list:
        """Rejects for Dropped subjects; the subjects that go on."""
        kept = []
        for subject, outcome in outcomes:
            if isinstance(outcome, Kept):
                kept.extend(outcome.subjects)
            elif isinstance(outcome, Dropped):
                self._reject(step.stage, subject, outcome)
            else:
                raise TypeError(f"{type(step).__name__} returned {type(outcome).__name__} outside Rewrite")
        self._count(step.name, len(outcomes), len(kept))
        return kept

    async def _rewrite(self, rewrite: Rewrite, subjects: list[Candidate], upstream: str) -> tuple[list, str]:
        for step in rewrite.steps:
            step.setup(self.config)
        loop = fp.digest([self._fingerprint(step, upstream)[0] for step in rewrite.steps])
        rounds = rewrite.rounds(self.config)
        active, accepted = list(subjects), []
        for attempt in range(rounds):
            if not active:
                break
            for candidate in active:
                candidate.attempts = attempt + 1
            again = []
            for step in rewrite.steps:
                outcomes, _ = await self._step(step, active, upstream, loop=loop)
                retried = [(s, o) for s, o in outcomes if isinstance(o, Retry)]
                active = self._apply(step, [(s, o) for s, o in outcomes if not isinstance(o, Retry)])
                self._count(step.name, len(retried), 0)
                for candidate, outcome in retried:
                    candidate.feedback.extend(outcome.failures)
                    if attempt + 1 < rounds:
                        again.append(candidate)
                    else:
                        self._reject(rewrite.stage, candidate, Dropped(
                            rewrite.exhausted(attempt + 1, self.config, outcome.failures), "rewrite budget exhausted"))
            accepted.extend(active)
            active = again
        self._count(rewrite.name, len(subjects), len(accepted))
        self.fingerprints[rewrite.name] = loop
        order = {candidate.key: index for index, candidate in enumerate(subjects)}
        return sorted(accepted, key=lambda c: order[c.key]), loop

    # ---------------------------------------------------------------------------------------- records

    def _reject(self, stage: str, subject, outcome: Dropped) -> None:
        if isinstance(subject, ImageRecord):
            self.rejects.append(Reject("image", stage, outcome.reason, subject.filename, subject.image_id,
                                       {"cause": outcome.cause}))
            return
        record = self.state.records[subject.image_id]
        self.rejects.append(Reject("pair", stage, outcome.reason, subject.key, subject.image_id, {
            "cause": outcome.cause, "risk": vars(subject.risk), "text": subject.text,
            "safe_twin_text": subject.safe_twin_text, "attempts": subject.attempts, "feedback": list(subject.feedback),
            "responses": dict(subject.responses), "image_file": record.filename}))

    def _pair(self, candidate: Candidate) -> dict[str, Any]:
        return {
            "key": candidate.key,
            "image_id": candidate.image_id,
            "pair_id": pair_id_for(candidate.image_id, candidate.text),
            "scene": self.state.scenes[candidate.image_id],
            "text": candidate.text,
            "safe_twin_text": candidate.safe_twin_text,
            "risk": vars(candidate.risk),
            "verification": candidate.verification,
            "attempts": candidate.attempts,
            "safe_response": candidate.responses[SAFE],
            "unsafe_response": candidate.responses[UNSAFE],
            "generator": self.config.generator.model,
        }


# ------------------------------------------------------------------------------------------ shard output


def write_shard_outcome(out: Path, outcome: ShardOutcome, shard: tuple[int, int], config: RunConfig) -> Path:
    """Write `<out>/shard/` (atomically per file): what `merge` reads. The summary records the config and
    the fingerprint of every step's checkpoint, i.e. exactly what produced the outcome."""
    shard_dir = Path(out) / "shard"
    shard_dir.mkdir(parents=True, exist_ok=True)

    def jsonl(rows) -> bytes:
        return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows).encode()

    files = {"images.jsonl": [r.to_json() for r in outcome.images], "pairs.jsonl": outcome.pairs,
             "rejects.jsonl": [r.to_json() for r in outcome.rejects]}
    written = {}
    for name, rows in files.items():
        data = jsonl(rows)
        write_atomic(shard_dir / name, data)
        written[name] = {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}
    summary = {"shard": list(shard), "funnel": outcome.funnel, "config": config.to_dict(), "normalise_version": NORMALISE_VERSION,
               "fingerprints": outcome.fingerprints, "prompts": outcome.prompts, "models": outcome.models,
               "usage": {"prompt_tokens": outcome.usage.prompt_tokens, "completion_tokens": outcome.usage.completion_tokens},
               "model_calls": outcome.model_calls, "model_calls_by_step": outcome.model_calls_by_step,
               "cached_calls": outcome.cached_calls, "calls": outcome.calls.to_json(),
               "files": written}  # what merge checks each file against (a truncated or edited file is refused)
    write_atomic(shard_dir / "summary.json", json.dumps(summary, indent=2, sort_keys=True).encode())
    return shard_dir


RERUN_SHARD = ("rerun that shard's `python -m generation run` (same --shard and --out: its finished steps are "
               "resumed), then merge again")


def read_shard_summary(path: Path) -> dict[str, Any]:
    """A shard's summary.json; a `DamagedFile` naming it when it is not a JSON object."""
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise DamagedFile(f"{path}: damaged, not valid JSON ({error}); {RERUN_SHARD}") from None
    if not isinstance(summary, dict):
        raise DamagedFile(f"{path}: damaged, not a JSON object; {RERUN_SHARD}")
    return summary


def check_shard_file(path: Path, summary: dict[str, Any]) -> None:
    """A `DamagedFile` unless `path` holds the rows and bytes its shard wrote (the summary's ``files``;
    summaries written before they were recorded are not checked)."""
    expected = summary.get("files", {}).get(Path(path).name)
    if not expected:
        return
    digest, rows = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            rows += block.count(b"\n")
    if rows != expected["rows"]:
        raise DamagedFile(f"{path}: {rows} rows where its shard wrote {expected['rows']} (summary.json): the file was "
                          f"truncated or damaged; {RERUN_SHARD}")
    if digest.hexdigest() != expected["sha256"]:
        raise DamagedFile(f"{path}: its bytes changed since its shard wrote them (sha256 differs from summary.json); "
                          f"{RERUN_SHARD}")
