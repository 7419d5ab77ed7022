"""How long `compute_metrics` takes (bootstrap CIs included) for benchmark-sized inputs.

    python bench/metrics_bootstrap.py [--sizes 200 2241 10000] [--n-bootstrap 1000] [--repeats 3]

Prints a markdown table: items, with/without probabilities (AUROC), best-of-repeats wall time, and the
peak memory numpy allocated during one call (tracemalloc; the bootstrap runs in bounded blocks).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from eval.metrics import compute_metrics  # noqa: E402


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    references = np.where(rng.random(n) < 0.5, "unsafe", "safe").tolist()
    probabilities = np.clip(rng.normal(np.where(np.array(references) == "unsafe", 0.65, 0.35), 0.2), 0, 1)
    predictions = [None if rng.random() < 0.02 else ("unsafe" if p > 0.5 else "safe") for p in probabilities]
    categories = rng.choice([f"c{i}" for i in range(10)], n).tolist()
    return predictions, references, probabilities.tolist(), categories


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2241, 10000])
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
          f"numpy {np.__version__}, n_bootstrap={args.n_bootstrap}")
    print("| items | AUROC | seconds (best of %d) | peak MiB |" % args.repeats)
    print("|---:|:---:|---:|---:|")
    for n in args.sizes:
        predictions, references, probabilities, categories = synthetic(n)
        for with_auroc in (False, True):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                compute_metrics(predictions, references, probabilities=probabilities if with_auroc else None,
                                categories=categories, n_bootstrap=args.n_bootstrap, seed=0)
                times.append(time.perf_counter() - start)
            tracemalloc.start()
            compute_metrics(predictions, references, probabilities=probabilities if with_auroc else None,
                            categories=categories, n_bootstrap=args.n_bootstrap, seed=0)
            mib = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"| {n} | {'yes' if with_auroc else 'no'} | {min(times):.3f} | {mib:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
