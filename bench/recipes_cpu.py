"""Training throughput of the tiny LLaVA judge on CPU (LoRA, fp32): steps/s and samples/s per batch size.

    python bench/recipes_cpu.py [--batch-sizes 1 2 4] [--steps 6] [--warmup 2] [--threads N]

Runs the real recipe path (recipes/tiny_llava/qlora.yaml -> prepare -> SFTTrainer) on the curated sample
release built into a temporary folder, times `--steps` optimizer steps after `--warmup` untimed ones, and
prints a Markdown table. The tiny model says nothing about big-model speed; it measures the pipeline overhead
(collation, image processing, LoRA forward/backward) on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from transformers import TrainerCallback  # noqa: E402

from generation.sample import build_sample  # noqa: E402
from recipes.config import load_recipe  # noqa: E402
from recipes.train import build_trainer, prepare  # noqa: E402

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny_llava" / "qlora.yaml"


class StepTimer(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def measure(release: Path, out: Path, batch_size: int, steps: int, warmup: int) -> dict:
    recipe = load_recipe(TINY, {
        "data.sources": [{"name": "rms", "options": {"release": str(release)}}],
        "training.per_device_train_batch_size": batch_size, "training.max_steps": steps + warmup,
        "training.save_steps": 10_000, "training.logging_steps": 10_000, "training.output_dir": str(out / f"bs{batch_size}"),
    })
    trainer = build_trainer(prepare(recipe))
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    timed = timer.ends[warmup - 1:]  # from the end of the last warm-up step to the end of the last step
    seconds = timed[-1] - timed[0]
    n = len(timed) - 1
    return {"batch": batch_size, "steps": n, "seconds": seconds, "steps_per_s": n / seconds,
            "samples_per_s": n * batch_size / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); 1 is much faster on a shared machine")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        release = build_sample(Path(tmp) / "release", overwrite=True)
        rows = [measure(release, Path(tmp), bs, args.steps, args.warmup) for bs in args.batch_sizes]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    print("| batch size | timed steps | seconds | steps/s | samples/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['batch']} | {row['steps']} | {row['seconds']:.1f} | {row['steps_per_s']:.3f} | "
              f"{row['samples_per_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
