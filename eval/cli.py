"""Command-line pieces shared by the eval commands: the judge flags (`add_judge_arguments`) and the judge
spec they build, and the benchmarks a command line asks for (`requested_specs`)."""

from __future__ import annotations

import argparse
from eval.judges.spec import JudgeSpec, parse_judge_spec
from eval.spec import DEFAULT_SUITE, BenchmarkSpec, load_suite, parse_specs


def add_judge_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Flags that build a judge (shared by eval.score and eval.respond)."""
    p = f"--{prefix}" if prefix else "--"
    parser.add_argument(f"{p}kind", default="hf",
                        help="judge kind: hf, llama-guard, llavaguard, api, a sanity judge (constant:unsafe, "
                             "constant:safe, random:SEED, oracle:ACCURACY:SEED) or a callable judge "
                             "python:MODULE:FUNCTION, e.g. python:eval.judges.rules:harmful_keywords (default hf)")
    parser.add_argument(f"{p}base-model", help="base model: Hub id, local dir, or offline alias smollm2 / tiny-llava")
    parser.add_argument(f"{p}adapter", help="LoRA adapter directory from the recipes (judge_metadata.json is read)")
    parser.add_argument(f"{p}mode", default=None, choices=("fast", "generative"),
                        help="HF scoring path (default: fast with --adapter, generative for a zero-shot base model)")
    parser.add_argument(f"{p}batch-size", type=int, default=None, help="items per forward pass (default 8)")
    parser.add_argument(f"{p}max-new-tokens", type=int, default=None, help="generative path: tokens to generate")
    parser.add_argument(f"{p}load-in-4bit", action="store_true", help="load the base model in 4-bit (GPU)")
    parser.add_argument(f"{p}api-model", help="api judge: model name at the endpoint")
    parser.add_argument(f"{p}base-url", help="api judge: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument(f"{p}policy-file", help="llavaguard: the policy text to prompt with")


def judge_spec_from_args(args: argparse.Namespace, prefix: str = "") -> JudgeSpec:
    """The typed judge spec the judge flags give (``ConfigError`` naming the flag's key when one is wrong)."""
    get = lambda name: getattr(args, f"{prefix}{name}".replace("-", "_"))  # noqa: E731
    given = {"kind": get("kind"), "base_model": get("base-model"), "adapter": get("adapter"), "mode": get("mode"),
             "batch_size": get("batch-size"), "max_new_tokens": get("max-new-tokens"),
             "load_in_4bit": get("load-in-4bit"), "model": get("api-model"), "base_url": get("base-url"),
             "policy_file": get("policy-file")}
    return parse_judge_spec({key: value for key, value in given.items() if value is not None},
                            source="command line")


def requested_specs(args: argparse.Namespace) -> list[BenchmarkSpec]:
    """The benchmarks a command line asks for: one ``--benchmark``, the ``--benchmarks`` names (their suite
    entries, else default options), or every ``--suite`` entry. Raises ConfigError."""
    if args.benchmark:
        return parse_specs([{"name": args.benchmark, "task": args.task, "options": dict(args.option),
                             "split": args.split, "limit": args.limit, "text_only": args.text_only}],
                           source="command line")
    specs = load_suite(args.suite or DEFAULT_SUITE)
    if args.benchmarks:
        names = [name.strip() for name in args.benchmarks.split(",") if name.strip()]
        chosen = [spec for spec in specs if spec.name in names]
        others = [{"name": name, "task": args.task} for name in names if name not in {spec.name for spec in chosen}]
        chosen += parse_specs(others, source="--benchmarks") if others else []
        specs = chosen
    return [spec.model_copy(update={"limit": args.limit or spec.limit, "text_only": args.text_only or spec.text_only})
            for spec in specs]
