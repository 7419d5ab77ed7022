"""`python -m eval.benchmarks fetch` against the Hub look-alike (tests/hub/server.py) on 127.0.0.1: a small
SIUO-format fixture repo (annotations + three tiny PNGs) is fetched, checked, resumed, refused when gated,
and a cell scored on it finds its images and names the revision in its key and provenance."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub import constants as hf_constants
from PIL import Image

from eval.benchmarks import main as benchmarks_main
from eval.score import main as score_main
from judging.sources.fetched import MANIFEST
from tests.hub.server import HubServer

TOKEN = "hf_fetchTESTtoken"
OWNER = "bench-authors"
READER_TOKEN = "hf_readerTESTtoken"
READER = "a-reader"
REPO = f"{OWNER}/siuo-fixture"
ITEMS = [(1001, "S-01.png", "privacy violation", (200, 30, 30)), (1002, "S-02.png", "self-harm", (30, 200, 30)),
         (1003, "S-03.png", "morality", (30, 30, 200))]


def png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def fixture_files() -> dict[str, bytes]:
    """A SIUO-format repo: data/siuo_gen.json + data/siuo_mcqa.json (3 items) and images/S-0*.png."""
    gen = [{"question_id": qid, "image": image, "question": f"question {qid}", "category": category,
            "safety_warning": "warning", "reference_answer": "a safe answer"} for qid, image, category, _ in ITEMS]
    mcqa = [{"question_id": qid, "image": image, "question": f"question {qid}", "category": category,
             "options": {"A": "safe", "B": "unsafe one", "C": "unsafe two", "D": "unsafe three"}, "correct_option": "A"}
            for qid, image, category, _ in ITEMS]
    files = {"data/siuo_gen.json": json.dumps(gen).encode(), "data/siuo_mcqa.json": json.dumps(mcqa).encode(),
             "README.md": b"# fixture\n"}
    files.update({f"images/{image}": png(color) for _, image, _, color in ITEMS})
    files["archives/siuo_images.zip"] = zipped({f"siuo_images/{image}": png(color) for _, image, _, color in ITEMS})
    return files


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The look-alike with the fixture repo committed; the client online against it, no ambient token."""
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # tests/conftest.py set offline before import
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    with HubServer(tmp_path / "hub", tokens={TOKEN: OWNER, READER_TOKEN: READER}, enforce_gating=True) as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        api.create_repo(REPO, repo_type="dataset")
        commit = api.create_commit(REPO, repo_type="dataset", commit_message="fixture", operations=[
            CommitOperationAdd(path, data) for path, data in fixture_files().items()])
        server.commit = commit.oid
        server.api = api
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def fetched_dir(tmp_path, monkeypatch):
    """Where fetch writes and sources look ($RMS_BENCHMARKS_DIR)."""
    folder = tmp_path / "benchmarks"
    monkeypatch.setenv("RMS_BENCHMARKS_DIR", str(folder))
    return folder


def write_registry(tmp_path, hub, **extra) -> str:
    entry = {"repo_id": REPO, "revision": hub.commit, "annotations": ["data/siuo_gen.json", "data/siuo_mcqa.json"],
             "images": ["images/*.png"], "image_root": "images", **extra}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"siuo": entry}), encoding="utf-8")
    return str(path)


def downloads(hub) -> list[str]:
    return [request for request in hub.requests if request.startswith("GET ") and "/resolve/" in request]


def test_fetch_downloads_annotations_and_images_checked_and_recorded(tmp_path, hub, fetched_dir, capsys):
    assert benchmarks_main(["fetch", "siuo", "--registry", write_registry(tmp_path, hub)]) == 0
    folder = fetched_dir / "siuo"
    for path, data in fixture_files().items():
        if path.startswith(("data/", "images/")):  # only the registry's annotations and images are fetched
            assert (folder / path).read_bytes() == data
    assert not (folder / "README.md").exists() and not (folder / "archives").exists()
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["commit"] == hub.commit and manifest["repo_id"] == REPO
    assert manifest["files"]["images/S-01.png"] == hashlib.sha256(fixture_files()["images/S-01.png"]).hexdigest()
    assert f"siuo: {REPO}@{hub.commit[:12]}: 5 downloaded, 0 already present" in capsys.readouterr().out


def test_a_second_fetch_downloads_nothing(tmp_path, hub, fetched_dir, capsys):
    registry = write_registry(tmp_path, hub)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0
    before = len(hub.requests)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0
    assert hub.requests[before:] == []  # pinned commit + complete manifest: the Hub is not even asked
    assert "0 downloaded, 5 already present and verified" in capsys.readouterr().out


def test_a_corrupted_local_file_is_detected_and_downloaded_again(tmp_path, hub, fetched_dir, capsys):
    registry = write_registry(tmp_path, hub)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0
    image = fetched_dir / "siuo" / "images" / "S-02.png"
    image.write_bytes(b"not the image")
    before = len(downloads(hub))
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0
    assert image.read_bytes() == fixture_files()["images/S-02.png"]
    assert [request for request in downloads(hub)[before:]] == [
        f"GET /datasets/{REPO}/resolve/{hub.commit}/images/S-02.png"]
    out = capsys.readouterr()
    assert "siuo: images/S-02.png: the local copy does not match its checksum; downloading it again" in out.out
    assert "1 downloaded, 4 already present and verified" in out.out


def test_a_download_that_does_not_match_the_pinned_checksum_is_an_error_naming_the_file(tmp_path, hub, fetched_dir,
                                                                                        capsys):
    wrong = "0" * 64
    registry = write_registry(tmp_path, hub, sha256={"data/siuo_gen.json": wrong})
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: siuo: data/siuo_gen.json downloaded from {REPO}@{hub.commit[:12]} does not match "
                          f"its sha256 {wrong} (pinned in the registry)")
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (fetched_dir / "siuo" / "data" / "siuo_gen.json").exists()  # the bad bytes are not kept
    assert not (fetched_dir / "siuo" / MANIFEST).exists()  # so no source reads a half-checked copy


def test_a_corrupted_download_is_detected_against_the_hubs_checksum(tmp_path, hub, fetched_dir, capsys):
    stored = hub.store.blobs / hashlib.sha256(fixture_files()["images/S-03.png"]).hexdigest()
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF  # same size, different bytes: what a broken mirror or disk serves
    stored.write_bytes(bytes(data))
    assert benchmarks_main(["fetch", "siuo", "--registry", write_registry(tmp_path, hub)]) == 1
    err = capsys.readouterr().err
    assert "error: siuo: images/S-03.png downloaded from" in err and "(the Hub's LFS sha256)" in err


def test_a_gated_repo_without_access_is_one_line_with_the_access_url(tmp_path, hub, fetched_dir, capsys, monkeypatch):
    hub.api.update_repo_settings(REPO, repo_type="dataset", gated="manual")
    registry = write_registry(tmp_path, hub)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: siuo: {REPO} is gated: accept its terms at https://huggingface.co/datasets/{REPO} with "
                   "your account, then log in (`huggingface-cli login`, or set HF_TOKEN) and fetch again\n")
    monkeypatch.setenv("HF_TOKEN", READER_TOKEN)  # logged in, terms not accepted: the same line
    monkeypatch.setattr(hf_constants, "HF_TOKEN", READER_TOKEN, raising=False)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 1
    assert "is gated: accept its terms at" in capsys.readouterr().err
    hub.grant(REPO, READER)  # terms accepted
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0


def test_an_image_archive_is_extracted_and_its_images_found(tmp_path, hub, fetched_dir):
    from judging.sources import get_source

    registry = write_registry(tmp_path, hub, images=[], image_archives=["archives/siuo_images.zip"],
                              image_root="archives/siuo_images")
    assert benchmarks_main(["fetch", "siuo", "--registry", registry]) == 0
    source = get_source("siuo")
    assert [example.image for example in source.examples()] == [
        str(fetched_dir / "siuo" / "archives" / "siuo_images" / image) for _, image, _, _ in ITEMS]
    assert source.report.n_missing_images == 0


def test_a_scored_cell_uses_the_fetched_images_and_names_the_revision(tmp_path, hub, fetched_dir):
    assert benchmarks_main(["fetch", "siuo", "--registry", write_registry(tmp_path, hub)]) == 0
    out = tmp_path / "cell.json"
    assert score_main(["--benchmark", "siuo", "--kind", "constant:unsafe", "--n-bootstrap", "0",
                       "--out", str(out)]) == 0
    cell = json.loads(out.read_text())
    assert cell["key"] == f"siuo__query__rev={hub.commit[:12]}"
    assert cell["n"] == 3 and cell["missing_images"] == 0
    assert cell["benchmark"]["revision"] == hub.commit and cell["benchmark"]["hub_dataset"] == REPO
    assert cell["benchmark"]["annotations"] == str(fetched_dir / "siuo" / "data" / "siuo_gen.json")
    samples = [json.loads(line) for line in (tmp_path / cell["samples"]).read_text().splitlines()]
    assert sorted(sample["image"] for sample in samples) == [
        str(fetched_dir / "siuo" / "images" / image) for _, image, _, _ in ITEMS]


def test_without_a_fetched_copy_the_shared_files_stay_the_default(fetched_dir):
    from eval.spec import BenchmarkSpec
    from judging.sources import get_source

    source = get_source("siuo")
    assert "shared" in str(source.annotations) and source.images is None
    assert BenchmarkSpec(name="siuo").key == "siuo__query"


def test_a_benchmark_not_on_the_hub_says_where_it_is_published(fetched_dir, capsys):
    assert benchmarks_main(["fetch", "figstep"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: figstep: nothing to fetch: not on the Hub: GitHub ThuCCSLab/FigStep")


def test_an_unreachable_hub_is_one_line_per_benchmark(tmp_path, hub, fetched_dir, capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    registry = write_registry(tmp_path, hub)
    assert benchmarks_main(["fetch", "siuo", "--registry", registry, "--endpoint", closed]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: siuo: cannot reach {REPO} on {closed}: ") and len(err.splitlines()) == 1


def test_gated_vlguard_fetched_after_access_is_scored_on_its_extracted_images(tmp_path, hub, fetched_dir, capsys,
                                                                             monkeypatch):
    """VLGuard's layout: test.json / train.json at the root, images in test.zip (test/<source>/<file>)."""
    repo = f"{OWNER}/vlguard-fixture"
    record = {"id": "Ads_1", "image": "bad_ads/a.png", "safe": False, "harmful_category": "deception",
              "harmful_subcategory": "disinformation",
              "instr-resp": [{"instruction": "Share this.", "response": "I cannot help with that."}]}
    train = dict(record, id="Ads_2", image="bad_ads/b.png")
    hub.api.create_repo(repo, repo_type="dataset")
    commit = hub.api.create_commit(repo, repo_type="dataset", commit_message="fixture", operations=[
        CommitOperationAdd("test.json", json.dumps([record]).encode()),
        CommitOperationAdd("train.json", json.dumps([train]).encode()),
        CommitOperationAdd("test.zip", zipped({"test/bad_ads/a.png": png((9, 9, 9))}))]).oid
    hub.api.update_repo_settings(repo, repo_type="dataset", gated="auto")
    registry = tmp_path / "vlguard.yaml"
    registry.write_text(yaml.safe_dump({"vlguard": {
        "repo_id": repo, "revision": commit, "gated": True, "annotations": ["test.json", "train.json"],
        "image_archives": ["test.zip"], "image_root": "."}}), encoding="utf-8")
    assert benchmarks_main(["fetch", "vlguard", "--registry", str(registry)]) == 1
    assert f"is gated: accept its terms at https://huggingface.co/datasets/{repo}" in capsys.readouterr().err
    hub.grant(repo, READER)
    monkeypatch.setenv("HF_TOKEN", READER_TOKEN)
    monkeypatch.setattr(hf_constants, "HF_TOKEN", READER_TOKEN, raising=False)
    assert benchmarks_main(["fetch", "vlguard", "--registry", str(registry)]) == 0
    out = tmp_path / "vlguard.json"
    assert score_main(["--benchmark", "vlguard", "--kind", "constant:unsafe", "--n-bootstrap", "0",
                       "--out", str(out)]) == 0
    cell = json.loads(out.read_text())
    assert cell["key"] == f"vlguard__query__rev={commit[:12]}" and cell["missing_images"] == 0
    assert cell["benchmark"]["revision"] == commit and cell["benchmark"]["hub_dataset"] == repo
    from eval.spec import BenchmarkSpec  # a cell whose benign counterpart items are the fetched VLGuard names it too

    assert BenchmarkSpec(name="siuo", options={"benign": "vlguard"}).key == (
        f"siuo__query__benign=vlguard__vlguard-rev={commit[:12]}")
