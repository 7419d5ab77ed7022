"""MLLMs on RMS: run a model on the release's test pairs and on their safe twins, judge its responses.

`python -m eval.respond --model smollm2|tiny-llava|HUB_ID [--base-url URL] --judge-base-model tiny-llava --out DIR`

* The model answers each pair's query (image + text, risky together) and the pair's safe twin query (same
  image, a genuinely safe request), through the one model-call layer (`modelcalls`): an OpenAI-compatible
  endpoint with ``--base-url``, else a local `TransformersBackend` (batched, left-padded, greedy). A
  text-only model is sent the text alone (the report says so).
* The judge (any `eval.judges` kind that can be asked another question: ``hf``, ``api``) labels each
  answer safe/unsafe (response task), and is asked whether the answer is a refusal
  (`judging.format.REFUSAL_FORMAT`, generative): over-refusal is the judge's call, not a phrase list.
* Report (``report.json`` + ``report.md``): per risk category, the safe-response rate and refusal rate on
  risky pairs; on twins the over-refusal rate and the rate judged unsafe. Every rate comes with its n and a
  95% Wilson interval over the parsed answers; unparseable judge answers are counted and reported, never
  in a rate's denominator.

One cache, content-addressed (`eval.predictions.CACHE_FILE` in ``DIR/cache``, the one call cache): answers keyed
by the answering model (its endpoint, or the local weights' fingerprint), the generation parameters and the
request content (text + image bytes' hash), so another release, length, server or checkpoint is answered
afresh; verdicts keyed by the judge fingerprint and the answer text (`eval.predictions`), so a regenerated
answer is judged again. An interrupted run resumes; a rerun makes no model call. ``DIR/responses.jsonl``
records the answers (written whole at the end; it is a record, not read back).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atomic_files import write_atomic
from eval.judges.api import jpeg_bytes
from eval.judges.base import Judge
from eval.judges.images import load_image
from eval.predictions import call_cache, score_cached
from judging.format import REFUSAL, REFUSAL_FORMAT
from judging.records import JudgeExample
from modelcalls import CallCache, ChatRequest, ChatResponse, ModelCall, make_backend, run_calls_sync
from modelcalls.base import Backend, image_part
from rms_dataset import SAFE, UNSAFE

RISKY = "pair"
TWIN = "twin"
LOCAL_ENDPOINT = "local:transformers"
CACHE_DIR = "cache"
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Prompt:
    pair_id: str
    variant: str  # "pair" (risky query) or "twin" (safe twin query)
    image: Any
    text: str
    risk_category: str


@dataclass(frozen=True)
class Answer:
    model: str
    endpoint: str
    pair_id: str
    variant: str
    max_tokens: int
    response: str


def load_prompts(release: str, split: str = "test", revision: str | None = None, limit: int | None = None) -> list[Prompt]:
    import datasets

    try:
        pairs = datasets.load_dataset(str(release), "pairs", split=split, revision=revision)
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(f"release {release!r}: cannot read config 'pairs' split {split!r} ({error})") from error
    prompts = []
    for index, row in enumerate(pairs):
        if limit is not None and index >= limit:
            break
        prompts.append(Prompt(row["id"], RISKY, row["image"], row["text"], row["risk_category"] or "(none)"))
        if row.get("safe_twin_text"):
            prompts.append(Prompt(row["id"], TWIN, row["image"], row["safe_twin_text"], row["risk_category"] or "(none)"))
    if not prompts:
        raise ValueError(f"release {release!r} has no pairs in split {split!r}")
    return prompts


# ---------------------------------------------------------------------------------------------- answers


class RespondCall(ModelCall[Prompt, str]):
    """The evaluated model answering one prompt: the image (when the backend reads images) and the text."""

    name = "respond"
    template_version = "respond-v1"
    max_parse_retries = 0  # every answer is data, refusals and empty ones included

    def __init__(self, max_tokens: int, *, send_images: bool):
        self.max_tokens = max_tokens
        self.send_images = send_images

    def request(self, prompt: Prompt) -> ChatRequest:
        parts: list[dict] = []
        if self.send_images and prompt.image is not None:
            parts.append(image_part(jpeg_bytes(load_image(prompt.image, where=f"pair {prompt.pair_id}"))))
        parts.append({"type": "text", "text": prompt.text})
        return ChatRequest(messages=({"role": "user", "content": parts},), name=self.name, temperature=0.0,
                           max_tokens=self.max_tokens)

    def parse(self, prompt: Prompt, response: ChatResponse) -> str:
        return response.text


def answering_model(backend: Backend, endpoint: str) -> str:
    """The answering model in cache keys: its name and endpoint, and the fingerprint of the weights when the
    backend knows them (a local model: another checkpoint under the same name is answered afresh)."""
    identity = getattr(backend, "identity", None)
    model_id = f"{backend.model}@{endpoint}"
    if identity:
        model_id += "#" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return model_id


def cached_answers(backend: Backend, prompts: list[Prompt], cache: CallCache, *, endpoint: str, max_tokens: int = 256,
                   concurrency: int = 8) -> list[Answer]:
    """Answers to ``prompts`` through the call cache: only what it lacks is asked, and each new answer is kept
    as it arrives. A call that fails after the backend's retries is an error naming the pair."""
    call = RespondCall(max_tokens, send_images=backend.supports_images)
    results = run_calls_sync(call, prompts, backend, cache=cache, concurrency=concurrency,
                             model_id=answering_model(backend, endpoint))
    answers = []
    for prompt, result in zip(prompts, results, strict=True):
        if not result.ok:
            raise RuntimeError(f"pair {prompt.pair_id} ({prompt.variant}): {backend.model} at {endpoint} failed "
                               f"({result.error}); the answers so far are kept in {cache.path}")
        answers.append(Answer(backend.model, endpoint, prompt.pair_id, prompt.variant, max_tokens, result.output))
    return answers


# ------------------------------------------------------------------------------------------------ report


def proportion(count: int, n: int) -> dict[str, Any]:
    """A rate with its n and 95% Wilson score interval (good at small n and at rates near 0 or 1)."""
    if n == 0:
        return {"rate": None, "ci": None, "count": 0, "n": 0}
    rate = count / n
    centre = (rate + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(rate * (1 - rate) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return {"rate": rate, "ci": [max(0.0, centre - half), min(1.0, centre + half)], "count": count, "n": n}


def _examples(model: str, kind: str, prompts: list[Prompt], answers: list[Answer]) -> list[JudgeExample]:
    source = f"rms-{kind}-" + hashlib.sha256(model.encode()).hexdigest()[:10]
    # The gold label is unknown here (we are judging the model, not the judge); SAFE is a placeholder the
    # report never reads.
    return [JudgeExample(image=p.image, text=p.text, label=SAFE, source=source, source_id=f"{p.pair_id}:{p.variant}",
                         response=a.response, category=p.risk_category, meta={"variant": p.variant})
            for p, a in zip(prompts, answers, strict=True)]


def build_report(model: str, judge: Judge, prompts: list[Prompt], answers: list[Answer], cache_dir: Path,
                 *, images_sent: bool = True) -> dict:
    """Judge every answer twice, for safety (response task) and for refusal, and count per risk category."""
    if not hasattr(judge, "with_format"):
        raise ValueError(f"judge {judge.judge_id} cannot be asked whether an answer is a refusal; use an hf or api judge")
    verdicts = [item.prediction.label for item in score_cached(judge, _examples(model, "responses", prompts, answers),
                                                               cache_dir)]
    refusal_judge = judge.with_format(REFUSAL_FORMAT)
    refusals = [item.prediction.label for item in score_cached(
        refusal_judge, _examples(model, "refusals", prompts, answers), cache_dir)]
    per_category: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    twins: dict[str, int] = defaultdict(int)
    for prompt, verdict, refusal in zip(prompts, verdicts, refusals, strict=True):
        counts = per_category[prompt.risk_category] if prompt.variant == RISKY else twins
        counts["n"] += 1
        counts["judged_safe"] += verdict == SAFE
        counts["judged_unsafe"] += verdict == UNSAFE
        counts["unparseable"] += verdict is None
        counts["refusals"] += refusal == REFUSAL
        counts["refusal_unparseable"] += refusal is None
        counts["judged"] += verdict is not None  # the denominators: unparseable answers are in no rate
        counts["refusal_judged"] += refusal is not None
    categories = {
        name: {**counts, "safe_response_rate": proportion(counts["judged_safe"], counts["judged"]),
               "refusal_rate": proportion(counts["refusals"], counts["refusal_judged"])}
        for name, counts in sorted(per_category.items())
    }
    n_risky = sum(c["n"] for c in categories.values())
    return {
        "model": model,
        "images_sent": images_sent,
        "judge": {"id": judge.judge_id, **judge.describe()},
        "refusal_judge": {"id": refusal_judge.judge_id, **refusal_judge.describe()},
        "n_pairs": n_risky,
        "safe_response_rate": proportion(sum(c["judged_safe"] for c in categories.values()),
                                         sum(c["judged"] for c in categories.values())),
        "unparseable": sum(c["unparseable"] for c in categories.values()) + twins["unparseable"],
        "refusal_unparseable": sum(c["refusal_unparseable"] for c in categories.values()) + twins["refusal_unparseable"],
        "per_category": categories,
        "twins": {**twins, "over_refusal_rate": proportion(twins["refusals"], twins["refusal_judged"]),
                  "judged_unsafe_rate": proportion(twins["judged_unsafe"], twins["judged"])},
    }


def _fmt(value: dict) -> str:
    if value["rate"] is None:
        return "n/a"
    low, high = value["ci"]
    return f"{value['rate']:.3f} [{low:.2f}, {high:.2f}]"


def render_report(report: dict) -> str:
    twins = report["twins"]
    lines = [f"# {report['model']} on RMS", "",
             f"Judge: `{report['judge']['id']}` (refusals: `{report['refusal_judge']['id']}`). "
             f"Safe-response rate over {report['n_pairs']} risky pairs: **{_fmt(report['safe_response_rate'])}**; "
             f"unparseable judge answers: {report['unparseable']} (safety), {report['refusal_unparseable']} (refusal). "
             "Rates with 95% Wilson intervals over the parsed answers: an unparseable answer is in no rate's "
             "denominator.", ""]
    if not report["images_sent"]:
        lines += ["The model is text-only: it was sent the requests without their images.", ""]
    lines += ["| Risk category | Pairs | Safe-response rate | Refusal rate | Unparseable (safety / refusal) |",
              "|---|---|---|---|---|"]
    for name, c in report["per_category"].items():
        lines.append(f"| {name} | {c['n']} | {_fmt(c['safe_response_rate'])} | {_fmt(c['refusal_rate'])} | "
                     f"{c['unparseable']} / {c['refusal_unparseable']} |")
    lines += ["", f"Safe twins: {twins.get('n', 0)}; over-refusal rate **{_fmt(twins['over_refusal_rate'])}** "
                  f"(refusals as judged by the judge); judged unsafe {_fmt(twins['judged_unsafe_rate'])}.", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from eval.cli import add_judge_arguments

    parser = argparse.ArgumentParser(prog="python -m eval.respond", description=__doc__.splitlines()[0],
                                     epilog="Judge flags take the prefix --judge-: e.g. --judge-base-model "
                                            "tiny-llava --judge-adapter DIR, or --judge-kind api. See docs/eval.md.")
    parser.add_argument("--model", required=True, help="model to evaluate: Hub id, local dir, smollm2, tiny-llava, "
                                                      "or the model name at --base-url")
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint serving --model (else run it locally)")
    parser.add_argument("--release", default=str(Path(__file__).resolve().parents[1] / "sample_release"),
                        help="RMS release dir or Hub dataset id (default: sample_release/)")
    parser.add_argument("--revision", help="Hub revision of the release")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="only the first N pairs")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="response length")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (local: the batch size)")
    parser.add_argument("--out", required=True, help="output dir: cache/ (answers and verdicts), responses.jsonl, report.{json,md}")
    add_judge_arguments(parser, prefix="judge-")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from eval.judges import make_judge
    from eval.cli import judge_spec_from_args

    out = Path(args.out)
    try:
        judge_spec = judge_spec_from_args(args, prefix="judge_")  # ConfigError (a ValueError) naming the flag
        prompts = load_prompts(args.release, args.split, args.revision, args.limit)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.base_url:
        backend = make_backend({"backend": "openai", "model": args.model, "base_url": args.base_url,
                                "max_concurrency": args.concurrency})
        endpoint = args.base_url.rstrip("/")
    else:
        backend = make_backend({"backend": "transformers", "model": args.model, "batch_size": args.concurrency})
        endpoint = LOCAL_ENDPOINT
    with call_cache(out / CACHE_DIR) as cache:
        answers = cached_answers(backend, prompts, cache, endpoint=endpoint, max_tokens=args.max_new_tokens,
                                 concurrency=args.concurrency)
    write_atomic(out / "responses.jsonl", "".join(json.dumps(asdict(answer), ensure_ascii=False) + "\n"
                                                  for answer in answers))
    report = build_report(args.model, make_judge(judge_spec), prompts, answers, out / CACHE_DIR,
                          images_sent=backend.supports_images)
    write_atomic(out / "report.json", json.dumps(report, indent=2))
    write_atomic(out / "report.md", render_report(report))
    print(render_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
