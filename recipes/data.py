"""Training data for a recipe: read the sources, mix, balance, cap, and turn examples into trl rows.

Steps, in this order: read each source (with its own ``max_samples`` cap) -> `balance` labels -> shuffle with
the recipe's seed and interleave labels (so the caps keep the balance) -> cap to ``max_train_samples`` ->
keep the first ``train_fraction``. `to_sft_dataset` then writes trl's conversational prompt-completion format
(prompt = system + user turn from `judging.format`, completion = the judge's answer), so trl's collator puts the
loss on the answer only. Images stay as the photos' original bytes; `CappedImages` decodes each batch's images
at ``data.max_pixels`` as the batch is built.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from judging.format import prompt_messages, target_text
from judging.records import JudgeExample
from judging.sources import get_source
from recipes.config import DataConfig, RecipeError, SourceSpec
from rms_dataset import SAFE, UNSAFE


@dataclass
class SourceStats:
    """What one source contributed: provenance (path / repo + revision) and counts per label."""

    name: str
    split: str
    provenance: dict[str, Any]
    read: dict[str, int]  # label -> examples read
    used: dict[str, int] = field(default_factory=dict)  # label -> examples in the final training set
    missing_images: list[str] = field(default_factory=list)


@dataclass
class TrainingData:
    examples: list[JudgeExample]
    sources: list[SourceStats]

    @property
    def label_counts(self) -> dict[str, int]:
        return dict(Counter(example.label for example in self.examples))


def _read_source(spec: SourceSpec, task: str, seed: int) -> tuple[list[JudgeExample], SourceStats]:
    try:
        source = get_source(spec.name, **spec.options)
    except KeyError as error:
        raise RecipeError(f"data.sources: {error.args[0]}") from error
    except TypeError as error:
        raise RecipeError(f"data.sources[{spec.name}].options: {error}") from error
    if task not in source.tasks:
        raise RecipeError(f"data.sources: {spec.name!r} has no {task!r} task (it has {list(source.tasks)})")
    if spec.split not in source.splits:
        raise RecipeError(f"data.sources: {spec.name!r} has no split {spec.split!r} (it has {list(source.splits)})")
    examples = list(source.examples(spec.split, task))
    read = dict(Counter(example.label for example in examples))
    if spec.max_samples is not None and len(examples) > spec.max_samples:
        examples = random.Random(seed).sample(examples, spec.max_samples)
    report = getattr(source, "report", None)
    provenance = source.provenance() if hasattr(source, "provenance") else {}
    missing = [f"{example.source_id}: {example.meta.get('missing_image', '?')}" for example in examples
               if example.image is None]
    stats = SourceStats(spec.name, spec.split, provenance, read, missing_images=missing)
    if report is not None and getattr(report, "excluded", None):
        stats.provenance = {**provenance, "excluded": dict(report.excluded)}
    return examples, stats


def balance(examples: list[JudgeExample], mode: str, seed: int) -> list[JudgeExample]:
    """``downsample``: every label cut to the minority's count; ``upsample``: minority repeated to the majority's."""
    by_label: dict[str, list[JudgeExample]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    if mode == "none" or len(by_label) < 2:
        return list(examples)
    rng = random.Random(seed)
    sizes = [len(group) for group in by_label.values()]
    balanced: list[JudgeExample] = []
    for label in sorted(by_label):
        group = by_label[label]
        if mode == "downsample":
            balanced.extend(rng.sample(group, min(sizes)))
        else:
            extra = max(sizes) - len(group)
            balanced.extend(group + [rng.choice(group) for _ in range(extra)])
    return balanced


def interleave_labels(examples: list[JudgeExample]) -> list[JudgeExample]:
    """Round-robin over labels (order within a label kept): any prefix is as balanced as possible."""
    by_label: dict[str, list[JudgeExample]] = {}
    for example in examples:
        by_label.setdefault(example.label, []).append(example)
    groups = [by_label[label] for label in sorted(by_label)]
    return [group[i] for i in range(max(map(len, groups), default=0)) for group in groups if i < len(group)]


def build_training_data(config: DataConfig, seed: int) -> TrainingData:
    examples: list[JudgeExample] = []
    stats: list[SourceStats] = []
    for spec in config.sources:
        source_examples, source_stats = _read_source(spec, config.task, seed)
        examples.extend(source_examples)
        stats.append(source_stats)
    examples = balance(examples, config.balance, seed)
    random.Random(seed).shuffle(examples)
    if config.balance != "none":
        examples = interleave_labels(examples)  # so the caps below keep the labels balanced
    if config.max_train_samples is not None:
        examples = examples[: config.max_train_samples]
    if config.train_fraction < 1.0:
        examples = examples[: max(1, round(len(examples) * config.train_fraction))]
    for stat in stats:
        stat.used = dict(Counter(e.label for e in examples if e.source == stat.name))
    return TrainingData(examples, stats)


def check_training_data(data: TrainingData, config: DataConfig) -> None:
    """Errors before training: no examples, examples whose image cannot be found, one label only."""
    if not data.examples:
        raise RecipeError("data: the sources gave no training examples; check data.sources and their splits")
    for stat in data.sources:
        if stat.missing_images:
            shown = "; ".join(stat.missing_images[:5])
            raise RecipeError(f"data.sources[{stat.name}]: {len(stat.missing_images)} example(s) have no image "
                              f"(e.g. {shown}); set the source's image option (image_root / hub_dataset) in "
                              "data.sources[].options")
    labels = set(data.label_counts)
    if labels != {SAFE, UNSAFE} and not config.allow_single_class:
        names = ", ".join(f"{s.name}/{s.split}" for s in data.sources)
        raise RecipeError(f"data: every training example is labelled {sorted(labels)} ({names}); a judge needs both "
                          "'safe' and 'unsafe' examples. Add a source with the other label, or set "
                          "data.allow_single_class: true")


def capped_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """The size an image is trained at: at most ``max_pixels`` pixels, aspect kept (never upscaled)."""
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    scale = (max_pixels / (width * height)) ** 0.5
    return max(1, int(width * scale)), max(1, int(height * scale))


def stored_image(image: Any) -> dict[str, Any]:
    """An example's image as datasets stores it undecoded, ``{"bytes", "path"}``: the photo's original bytes (or
    its file path), never re-encoded; a PIL image without a file behind it is encoded once by datasets."""
    import datasets
    from PIL import Image

    if isinstance(image, dict):
        return {"bytes": image.get("bytes"), "path": image.get("path")}
    if isinstance(image, (bytes, bytearray)):
        return {"bytes": bytes(image), "path": None}
    if isinstance(image, Image.Image):
        return datasets.Image().encode_example(image)
    return {"bytes": None, "path": str(image)}


def _open(image: Any):
    import io

    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if isinstance(image, dict):
        return Image.open(io.BytesIO(image["bytes"])) if image.get("bytes") else Image.open(image["path"])
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image))
    return Image.open(image)


def load_image(image: Any, max_pixels: int | None):
    """An RGB PIL image at `capped_size`. JPEGs are decoded at the nearest reduced scale (``draft``), so a large
    photo capped to a small size never decodes at full size."""
    opened = _open(image)
    size = capped_size(opened.width, opened.height, max_pixels)
    if size != opened.size and opened.format == "JPEG":
        opened.draft("RGB", size)
    opened = opened.convert("RGB")
    return opened.resize(size) if opened.size != size else opened


def image_size(image: Any, max_pixels: int | None) -> tuple[int, int]:
    """`capped_size` of an image, read from its header only."""
    opened = _open(image)
    return capped_size(opened.width, opened.height, max_pixels)


def to_sft_row(example: JudgeExample, with_category: bool) -> dict[str, Any]:
    """One trl prompt-completion row: prompt messages, the answer as completion, and the image as stored."""
    return {
        "prompt": prompt_messages(example),
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": target_text(example, with_category)}]}],
        "images": [stored_image(example.image)] if example.image is not None else [],
    }


class CappedImages:
    """trl's collator, fed each batch's images decoded from their stored bytes at ``max_pixels`` (`load_image`):
    images are decoded and resized as batches are built, never all at once before training."""

    def __init__(self, collator, max_pixels: int | None):
        self.collator = collator
        self.max_pixels = max_pixels

    def __call__(self, examples: list[dict[str, Any]]):
        return self.collator([{**example, "images": [load_image(image, self.max_pixels) for image in example["images"]]}
                              for example in examples])


LENGTH_COLUMN = "length"
CHARACTERS_PER_TOKEN = 4  # English text, typical BPE vocabularies
PIXELS_PER_IMAGE_TOKEN = 28 * 28  # Qwen2-VL-style towers; only the ordering of the estimates matters


def estimated_length(row: dict[str, Any], max_pixels: int | None) -> int:
    """A row's sequence length, estimated from its text and image sizes, for grouping similar lengths."""
    characters = sum(len(part.get("text") or "") for message in row["prompt"] + row["completion"]
                     for part in message["content"])
    pixels = sum(width * height for width, height in (image_size(image, max_pixels) for image in row["images"]))
    return characters // CHARACTERS_PER_TOKEN + pixels // PIXELS_PER_IMAGE_TOKEN


def to_sft_dataset(examples: list[JudgeExample], with_category: bool, max_pixels: int | None, *,
                   with_length: bool = False):
    """The trl dataset: images stored undecoded as their original bytes (`CappedImages` decodes them per batch);
    ``with_length`` adds the `estimated_length` column that length-grouped batching reads."""
    import datasets

    message = datasets.List({"role": datasets.Value("string"),
                             "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})})
    features = datasets.Features({"prompt": message, "completion": message,
                                  "images": datasets.List(datasets.Image(decode=False))})
    if with_length:
        features[LENGTH_COLUMN] = datasets.Value("int64")

    rows = [to_sft_row(example, with_category) for example in examples]
    for row in rows:
        if with_length:
            row[LENGTH_COLUMN] = estimated_length(row, max_pixels)
        for part in (part for message in row["prompt"] + row["completion"] for part in message["content"]):
            part.setdefault("text", None)
    return datasets.Dataset.from_list(rows, features=features)
