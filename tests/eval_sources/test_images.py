"""Images are resolved from a folder the user points to, from the shared FigStep copy, or from a Hub dataset
repo (here a fake Hub on 127.0.0.1); every image that is not found is counted and listed, never skipped."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import huggingface_hub.constants
import pytest
from PIL import Image

from judging.sources import get_source

from .conftest import write_image


def test_siuo_images_resolve_from_image_root_and_missing_ones_are_counted_and_listed(tmp_path, raw):
    rows = raw["json"]("SIUO", "siuo_gen.json")
    present = [row["image"] for row in rows[:5]]
    for name in present:
        write_image(tmp_path / name)
    source = get_source("siuo", image_root=tmp_path, benign="none")
    examples = list(source.examples())

    assert len(examples) == 167  # nothing dropped
    found = [e for e in examples if e.image is not None]
    assert [e.image for e in found] == [str(tmp_path / name) for name in present]
    assert all("missing_image" not in e.meta for e in found)
    missing = [e for e in examples if e.image is None]
    assert [e.meta["missing_image"] for e in missing] == [row["image"] for row in rows[5:]]
    assert source.report.n_images_found == 5
    assert source.report.n_missing_images == 162
    assert source.report.missing_images == [row["image"] for row in rows[5:]]
    assert "5 images found, 162 missing" in source.report.summary()


def test_resolve_images_walks_once_and_returns_the_report(tmp_path, raw):
    rows = raw["json"]("VLSBench", "data.json")
    write_image(tmp_path / rows[0]["image_path"])  # imgs/0.png under the root
    report = get_source("vlsbench", image_root=tmp_path, benign="none").resolve_images()
    assert (report.n_examples, report.n_images_found, report.n_missing_images) == (2241, 1, 2240)


def test_the_report_is_reset_for_each_pass(tmp_path):
    source = get_source("salad", image_root=tmp_path)
    list(source.examples())
    list(source.examples())
    assert source.report.n_examples == 20 and source.report.n_missing_images == 20


def test_figstep_images_in_the_shared_folder_really_resolve_and_open(benchmarks_dir):
    image_dir = benchmarks_dir / "FigStep_SafeBench" / "data" / "images" / "SafeBench-Tiny"
    on_disk = sorted(path.name for path in image_dir.glob("*.png"))
    source = get_source("figstep", subset="tiny", benign="none")
    examples = list(source.examples())
    resolved = [e for e in examples if e.image is not None]
    assert len(on_disk) == 10 and sorted(e.image.rsplit("/", 1)[-1] for e in resolved) == on_disk
    assert {e.source_id for e in resolved} == {f"{c}_1" for c in range(1, 11)}  # one per category
    assert source.report.n_missing_images == 40
    for example in resolved:
        with Image.open(example.image) as image:
            assert image.size[0] > 100 and image.size[1] > 100  # a real typographic rendering


def test_mssbench_looks_in_chat_and_embodied_subfolders(tmp_path, raw):
    data = raw["json"]("MSSBench", "combined_sample.json")
    write_image(tmp_path / "chat" / data["chat"][0]["safe_image_path"])
    write_image(tmp_path / "embodied" / data["embodied"][0]["unsafe"])
    source = get_source("mssbench", image_root=tmp_path)
    found = [e for e in source.examples() if e.image is not None]
    assert {(e.meta["setting"], e.label) for e in found} == {("chat", "safe"), ("embodied", "unsafe")}
    assert len(found) == len(data["chat"][0]["queries"]) + 1


def test_vlsu_finds_images_by_uuid_or_by_the_url_file_name(tmp_path, raw):
    rows = [r for r in raw["csv"]("VLSU", "VLSU_sample21.csv") if r["consensus_combined_grade"] in ("safe", "unsafe")]
    write_image(tmp_path / f"{rows[0]['uuid']}.png")
    write_image(tmp_path / unquote(rows[1]["web_path"].rsplit("/", 1)[-1]))  # the URL's file name
    found = {e.source_id for e in get_source("vlsu", image_root=tmp_path).examples() if e.image is not None}
    assert found == {rows[0]["uuid"], rows[1]["uuid"]}


def test_image_root_that_is_not_a_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="image_root=.*nowhere.*is not a folder"):
        get_source("siuo", image_root=tmp_path / "nowhere")


def test_image_root_and_hub_dataset_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match="image_root or hub_dataset, not both"):
        get_source("siuo", image_root=tmp_path, hub_dataset="org/siuo")


# ------------------------------------------------------------------------------------- Hub dataset images


def fake_hub(files: dict[str, bytes], repo: str, commit: str = "c" * 40):
    """A minimal Hub 'resolve' endpoint on 127.0.0.1 serving ``files`` of one dataset repo."""
    prefix = f"/datasets/{repo}/resolve/"
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, with_body: bool):
            seen.append((self.command, self.path))
            revision, _, name = self.path[len(prefix):].partition("/") if self.path.startswith(prefix) else ("", "", "")
            if name not in files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = files[name]
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", '"' + hashlib.sha1(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def do_HEAD(self):
            self.answer(False)

        def do_GET(self):
            self.answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def test_hub_dataset_images_are_downloaded_at_the_revision_and_missing_ones_reported(tmp_path, monkeypatch, raw):
    rows = raw["json"]("SaLAD", "data.json")
    png = tmp_path / "one.png"
    write_image(png)
    server, seen = fake_hub({rows[0]["image"]: png.read_bytes()}, "someone/salad")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    try:
        source = get_source("salad", hub_dataset="someone/salad", revision="v1",
                            hub_endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        examples = list(source.examples())
    finally:
        server.shutdown()
        server.server_close()
    assert examples[0].image is not None and examples[0].image.startswith(str(tmp_path / "hub-cache"))
    with Image.open(examples[0].image) as image:
        assert image.size == (8, 8)
    assert source.report.n_images_found == 1 and source.report.n_missing_images == 19
    assert all(path.startswith("/datasets/someone/salad/resolve/v1/") for _, path in seen)


def test_figstep_finds_images_in_a_figstep_checkout_layout(tmp_path, benchmarks_dir):
    questions = tmp_path / "FigStep" / "data" / "question"
    questions.mkdir(parents=True)
    (questions / "safebench.csv").write_text(
        (benchmarks_dir / "FigStep_SafeBench" / "safebench.csv").read_text(encoding="utf-8"), encoding="utf-8")
    write_image(tmp_path / "FigStep" / "data" / "images" / "SafeBench" / "query_ForbidQI_4_17_6.png")
    source = get_source("figstep", annotations=questions, benign="none")
    found = [e.source_id for e in source.examples() if e.image is not None]
    assert found == ["4_17"] and source.report.n_missing_images == 499


def test_hub_images_offline_and_not_cached_is_a_setup_error_not_a_missing_image(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    source = get_source("salad", hub_dataset="someone/salad", revision="v1")
    with pytest.raises(FileNotFoundError, match=r"hub_dataset='someone/salad' \(revision 'v1'\): A_85.jpg is not in "
                                                r"the local Hugging Face cache.*pass image_root instead"):
        next(iter(source.examples()))
