"""Fast (single forward pass) versus generative judge scoring on the same model, items and batch size.

    python bench/eval_scoring.py [--model tiny-llava] [--items 32] [--batch-size 8] [--max-new-tokens 16]

Items: query-task examples of the sample release's test split (pairs + safe twins, real photos), repeated
to reach --items. Both paths are timed in one run after one untimed warm-up batch each. Prints a markdown
table: items/s per path, the speed-up, and how the verdicts compare (agreement of the parsed generative
verdict with the fast verdict; unparseable generations; items whose first generated token is a label token;
max |p_unsafe(fast) - p_unsafe(generation's first step)|), the label tokens the model's chat template gives
(`judging.format.verdict_token_ids`) and the mean probability mass on them (below
`judging.format.FORMAT_MISMATCH_MASS` a cell is flagged format_mismatch).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llava")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()

    import torch

    from eval.judges.hf import FAST, GENERATIVE, HFJudge
    from modelcalls.hf_loading import load_model
    from judging.format import FORMAT_MISMATCH_MASS
    from judging.sources.registry import get_source

    base = list(get_source("rms").examples("test", "query"))
    examples = [replace(base[i % len(base)], source_id=f"{base[i % len(base)].source_id}#{i}") for i in range(args.items)]
    loaded = load_model(args.model)
    judges = {FAST: HFJudge(loaded, mode=FAST, batch_size=args.batch_size),
              GENERATIVE: HFJudge(loaded, mode=GENERATIVE, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)}
    timings, predictions = {}, {}
    for mode, judge in judges.items():
        judge.score(examples[: args.batch_size])  # warm-up
        start = time.perf_counter()
        predictions[mode] = judge.score(examples)
        timings[mode] = time.perf_counter() - start

    fast, generative = predictions[FAST], predictions[GENERATIVE]
    parsed = [(f, g) for f, g in zip(fast, generative) if g.label is not None]
    label_first = [(f, g) for f, g in zip(fast, generative) if g.extras.get("first_token_is_label")]
    max_dp = max(abs(f.p_unsafe - g.extras["first_step_p_unsafe"]) for f, g in zip(fast, generative))
    rate = {mode: len(examples) / seconds for mode, seconds in timings.items()}
    print(f"model={args.model} items={len(examples)} batch_size={args.batch_size} "
          f"max_new_tokens={args.max_new_tokens} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"machine={platform.machine()} cpus={os.cpu_count()}")
    print()
    print("| path | seconds | items/s |")
    print("|---|---|---|")
    for mode in (FAST, GENERATIVE):
        print(f"| {mode} | {timings[mode]:.2f} | {rate[mode]:.2f} |")
    print()
    print(f"fast / generative speed-up: {rate[FAST] / rate[GENERATIVE]:.1f}x")
    agree = sum(f.label == g.label for f, g in parsed)
    print(f"verdict agreement where the generation parsed: {agree}/{len(parsed)}; "
          f"unparseable generations: {len(examples) - len(parsed)}")
    agree_first = sum(f.label == g.label for f, g in label_first)
    print(f"items whose first generated token is a label token: {len(label_first)} (agreeing: {agree_first})")
    print(f"max |p_unsafe fast - p_unsafe generation first step|: {max_dp:.2e}")
    tokens = judges[FAST].verdict_tokens
    names = loaded.tokenizer.convert_ids_to_tokens(list(tokens.ids))
    mass = sum(f.extras["label_mass"] for f in fast) / len(fast)
    print(f"label tokens from the chat template: safe={names[0]!r} unsafe={names[1]!r} "
          f"(ids {list(tokens.ids)}, shared prefix {list(tokens.prefix_ids)})")
    print(f"mean label mass (fast): {mass:.4f} (min {min(f.extras['label_mass'] for f in fast):.4f}); "
          f"format_mismatch: {mass < FORMAT_MISMATCH_MASS} (threshold {FORMAT_MISMATCH_MASS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
