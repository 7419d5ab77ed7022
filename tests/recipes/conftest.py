"""Shared fixtures for recipe tests: the curated release and ONE tiny training run reused by several tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_RECIPE = REPO_ROOT / "recipes" / "tiny_llava" / "qlora.yaml"


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One intra-op thread for this package's tests. On a shared 2-core machine two OpenMP threads spin-wait
    for each other whenever one is descheduled: measured here a 135M forward took 6-12 s with 2 threads and
    1.4 s with 1. On an idle machine 1 thread costs at most 2x. Restored afterwards for other test areas."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def curated_release(tmp_path_factory) -> Path:
    """A release written by the real release writer from the committed curated pairs (sample/)."""
    from generation.sample import build_sample

    return build_sample(tmp_path_factory.mktemp("release") / "rms", overwrite=True)


@pytest.fixture(scope="package")
def tiny_overrides(curated_release) -> dict:
    """The tiny recipe on the curated release: 2 examples (1 safe, 1 unsafe) = one repeated batch."""
    return {
        "data.sources": [{"name": "rms", "split": "train", "options": {"release": str(curated_release)}}],
        "data.max_train_samples": 2,
        "training.per_device_train_batch_size": 2,
        "training.max_steps": 4,
        "training.save_steps": 2,
    }


@pytest.fixture(scope="package")
def trained(tmp_path_factory, tiny_overrides):
    """recipes.train.train on the tiny recipe: 4 steps on the same batch, checkpoints at steps 2 and 4."""
    from recipes.train import train

    output_dir = tmp_path_factory.mktemp("tiny-run") / "out"
    return train(TINY_RECIPE, {**tiny_overrides, "training.output_dir": str(output_dir)})
