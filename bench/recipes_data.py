"""The recipe data path before and after keeping the photos' original bytes: the same examples, side by side.

    python bench/recipes_data.py [--examples 1000] [--max-pixels 401408] [--release DIR]

The examples are the release's training query examples (default: the repository's sample_release/, 84 examples
over its photos) repeated to ``--examples``; ``--max-pixels`` defaults to the Qwen2.5-VL recipes' cap. Each path
runs in a process of its own, so peak RSS is its own:

* **before**: what ``recipes/data.py`` did until the photos kept their bytes: every photo decoded (as the rms
  source then decoded a release), converted to RGB, resized to the cap, and stored by ``Dataset.from_list`` in an
  ``Image`` feature, which encodes it as PNG; all of it before the first training step;
* **after**: ``recipes.data.to_sft_dataset`` stores each photo's original bytes (``Image(decode=False)``), and
  ``recipes.data.CappedImages`` decodes each batch's images at the cap as the batch is built.

Columns: *prepare* (CPU seconds until the trainer could start), *images* (CPU seconds to hand every image once
to the collator, as one epoch does), peak RSS of the process and what it was before building (imports), the
dataset's Arrow bytes and the image bytes in it. CPU seconds (``time.process_time``), not wall time: the machine
these figures were taken on is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
QWEN_CAP = 401408


def _examples(release: str, count: int):
    from judging.sources import get_source

    read = list(get_source("rms", release=release).examples("train", "query"))
    return [read[index % len(read)] for index in range(count)]


def _features(image_feature):
    import datasets

    message = datasets.List({"role": datasets.Value("string"),
                             "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})})
    return datasets.Features({"prompt": message, "completion": message, "images": datasets.List(image_feature)})


def _before(examples, max_pixels: int):
    """The former data path, reproduced: decode, RGB, resize, then Dataset.from_list with a (PNG) Image feature."""
    import datasets
    from PIL import Image

    from recipes.data import capped_size, to_sft_row

    rows = []
    for example in examples:
        row = to_sft_row(example, with_category=False)
        image = Image.open(io.BytesIO(example.image["bytes"]))
        image.load()  # the rms source decoded every photo of a release as it read it
        image = image.convert("RGB")
        size = capped_size(image.width, image.height, max_pixels)
        row["images"] = [image.resize(size) if size != image.size else image]
        for part in (part for message in row["prompt"] + row["completion"] for part in message["content"]):
            part.setdefault("text", None)
        rows.append(row)
    dataset = datasets.Dataset.from_list(rows, features=_features(datasets.Image()))
    return dataset, lambda row: row["images"]


def _after(examples, max_pixels: int):
    from recipes.data import CappedImages, to_sft_dataset

    dataset = to_sft_dataset(examples, with_category=False, max_pixels=max_pixels)
    collate = CappedImages(lambda rows: [image for row in rows for image in row["images"]], max_pixels)
    return dataset, lambda row: collate([row])


def _image_bytes(dataset) -> int:
    import pyarrow.compute as pc

    images = dataset.data.column("images").combine_chunks().flatten()  # list<struct{bytes, path}> -> struct
    return pc.sum(pc.binary_length(images.field("bytes"))).as_py() or 0


def worker(path: str, release: str, count: int, max_pixels: int) -> dict:
    examples = _examples(release, count)
    import recipes.data  # noqa: F401  (imported before the baseline and the clock, as a training run has it)

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    dataset, images_of = (_before if path == "before" else _after)(examples, max_pixels)
    prepare_s = time.process_time() - started
    started = time.process_time()
    pixels = 0
    for index in range(len(dataset)):
        pixels += sum(image.width * image.height for image in images_of(dataset[index]))
    images_s = time.process_time() - started
    return {"path": path, "examples": len(dataset), "prepare_s": prepare_s, "images_s": images_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "baseline_rss_mib": baseline / 1024, "dataset_mib": dataset.data.nbytes / 2**20,
            "image_mib": _image_bytes(dataset) / 2**20, "mean_pixels": pixels / len(dataset)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--max-pixels", type=int, default=QWEN_CAP)
    parser.add_argument("--release", default=str(REPO / "sample_release"))
    parser.add_argument("--worker", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.release, args.examples, args.max_pixels)))
        return 0
    rows = []
    for path in ("before", "after"):
        done = subprocess.run([sys.executable, __file__, "--worker", path, "--examples", str(args.examples),
                               "--max-pixels", str(args.max_pixels), "--release", args.release],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.examples} examples from {args.release}, max_pixels {args.max_pixels}, mean image "
          f"{rows[1]['mean_pixels']:.0f} px as trained")
    print("| path | prepare (CPU s) | images, one epoch (CPU s) | peak RSS MiB (after imports) | dataset MiB | image MiB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['prepare_s']:.1f} | {row['images_s']:.1f} | {row['peak_rss_mib']:.0f} "
              f"({row['baseline_rss_mib']:.0f}) | {row['dataset_mib']:.1f} | {row['image_mib']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
