"""Fixtures for the publishing tests: a small real release, a local Hub look-alike and a clean HF environment."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from huggingface_hub import constants as hf_constants
from PIL import Image

import rms_dataset
from generation.release.write import write_release
from rms_dataset import PAIRS, SAFE_RESPONSES, UNSAFE_RESPONSES
from tests.hub.server import HubServer

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_TOKEN = "hf_publishTESTtokenZZ9plural9alpha"  # recognisable: the leak test greps for it
USER = "rms-maintainer"
ORG = "rms-org"


def shared_images() -> Path:
    return Path(os.environ.get("RMS_SHARED") or REPO_ROOT / ".." / "shared").resolve() / "images"


def _photos(count: int) -> list[tuple[bytes, dict]]:
    """`count` real photos from the shared images, shrunk to 64 px so the release stays small."""
    manifest = shared_images() / "MANIFEST.csv"
    with manifest.open(newline="") as f:
        entries = list(csv.DictReader(f))[:count]
    photos = []
    for entry in entries:
        image = Image.open(shared_images() / entry["file"]).convert("RGB")
        image.thumbnail((64, 64))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        photos.append((buffer.getvalue(), entry))
    return photos


def release_rows(n_pairs: int = 4, *, query_suffix: str = "") -> dict[str, dict[str, list[dict]]]:
    """Rows of a small but schema-true release: one pair per photo, with a safe and an unsafe response."""
    rows: dict[str, dict[str, list[dict]]] = {PAIRS: {"train": []}, SAFE_RESPONSES: {"train": []},
                                              UNSAFE_RESPONSES: {"train": []}}
    for number, (data, entry) in enumerate(_photos(n_pairs)):
        image_id = rms_dataset.image_id_for(data)
        text = f"I'd like to climb onto what I see here for a better view {number}{query_suffix}"
        pair_id = rms_dataset.pair_id_for(image_id, text)
        image = {"bytes": data, "path": entry["file"].rsplit(".", 1)[0] + ".png"}
        rows[PAIRS]["train"].append({
            "id": pair_id, "image": image, "image_id": image_id,
            "image_source": f"{entry['source_repo']}/{entry['source_path']}@{entry['commit']}",
            "image_license": entry["license"].split(" (")[0], "image_attribution": entry["license"],
            "scene": entry["description"], "text": text, "risk_category": "falls",
            "risk_subcategory": "fall_from_height", "risk_rationale": "Climbing is fine; here it risks a fall.",
            "safe_twin_text": f"What is a safe spot to enjoy the view here {number}?",
            "verification": {"text_alone": "safe", "image_alone": "safe", "pair": "unsafe", "safe_twin": "safe",
                             "verifier": rms_dataset.CURATED, "mode": rms_dataset.VERIFICATION_CURATED,
                             "scores": dict.fromkeys(rms_dataset.CHECKS), "margin": None},
            "generator": rms_dataset.CURATED, "pipeline_version": rms_dataset.PIPELINE_VERSION,
        })
        for config, label, response in (
            (SAFE_RESPONSES, rms_dataset.SAFE, "Please don't climb there; a fall from that height is dangerous."),
            (UNSAFE_RESPONSES, rms_dataset.UNSAFE, "Sure, just climb up and lean out for the best view."),
        ):
            rows[config]["train"].append({
                "id": rms_dataset.response_id_for(pair_id, label, response), "pair_id": pair_id, "image": image,
                "image_id": image_id, "text": text, "risk_category": "falls", "response": response,
                "label": label, "generator": rms_dataset.CURATED,
            })
    return rows


REPO = f"{ORG}/rms-test"


def write_test_release(root: Path, rows, version: str, repo_id: str = REPO) -> Path:
    """A release written by the real release writer, for `repo_id` at `version`."""
    return Path(write_release(root, rows, taxonomy={"falls": ["fall_from_height"]}, pretty_name="RMS test",
                              version=version, repo_id=repo_id))


@pytest.fixture(scope="session")
def release_v1(tmp_path_factory) -> tuple[Path, dict]:
    rows = release_rows(4)
    return write_test_release(tmp_path_factory.mktemp("release") / "v1", rows, "1.0.0"), rows


@pytest.fixture(scope="session")
def release_v2(tmp_path_factory) -> tuple[Path, dict]:
    """A second version: other texts (so other ids and parquet files), one pair more, no taxonomy.json."""
    rows = release_rows(5, query_suffix=" (v2)")
    root = Path(write_release(tmp_path_factory.mktemp("release") / "v2", rows, pretty_name="RMS test",
                              version="1.1.0", repo_id=REPO))
    return root, rows


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    """Isolated HF caches and no ambient token; returns the env dict for subprocesses."""
    env = {
        "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_CACHE": str(tmp_path / "hf_home" / "hub"),
        "HF_DATASETS_CACHE": str(tmp_path / "datasets_cache"), "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    # huggingface_hub reads these at import time (tests/conftest.py turned offline mode on before that):
    # publishing talks to the local server only, through an explicit endpoint.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    return env


@pytest.fixture
def hub(tmp_path):
    """A fresh Hub look-alike per test, accepting FAKE_TOKEN for USER (member of ORG)."""
    with HubServer(tmp_path / "hub", tokens={FAKE_TOKEN: USER}, orgs={USER: [ORG]}) as server:
        yield server


