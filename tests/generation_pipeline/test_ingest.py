"""Ingest: every bad input becomes a reject with a reason (never a crash); odd-but-valid images are
normalised to bounded RGB JPEGs; duplicates and near duplicates are dropped."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from generation.engine.records import Reject
from generation.steps.ingest import Ingestor, IngestOptions, RawImage, dhash, normalise_image, read_inputs
from tests.generation_pipeline.conftest import jpeg_bytes, shared_photos, write_folder


@dataclass
class Ingested:
    images: list = field(default_factory=list)  # (ImageRecord, jpeg bytes)
    rejects: list = field(default_factory=list)


def ingest(raws, options=IngestOptions()) -> Ingested:
    """Feed inputs through one Ingestor, as the executor does."""
    ingestor, result = Ingestor(options), Ingested()
    for raw in raws:
        outcome = ingestor.add(raw)
        (result.rejects if isinstance(outcome, Reject) else result.images).append(outcome)
    return result


def _raw(name, data, source="test", license_="CC0"):
    return RawImage(name, data, source, license_)


def _png(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def _noise(size=(96, 80), seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _reason(data: bytes, **options) -> str:
    result = ingest([_raw("x", data)], IngestOptions(**options))
    assert not result.images, "expected a reject"
    return result.rejects[0].reason


def test_unusable_files_are_rejected_with_a_reason():
    real = shared_photos(1)[0].read_bytes()
    assert _reason(b"") == "zero-byte file"
    assert "not an image" in _reason(b"name,license\nfoo,bar\n")
    assert "corrupt or truncated" in _reason(real[: len(real) // 2])
    corrupt = bytearray(real)
    corrupt[200:4000] = b"\x00" * 3800
    corrupt_result = ingest([_raw("c", bytes(corrupt))])
    assert corrupt_result.rejects or corrupt_result.images  # never raises; JPEG may decode garbage pixels
    bomb = _png(Image.new("L", (7000, 7000)))  # 49 Mpx of zeros: a 50 kB file
    assert len(bomb) < 200_000 and "decompression bomb" in _reason(bomb)  # default max_pixels = 40 Mpx
    assert "too small" in _reason(jpeg_bytes((8, 8)))


def test_missing_provenance_is_rejected():
    result = ingest([RawImage("a.jpg", jpeg_bytes(), "", "CC0"), RawImage("b.jpg", jpeg_bytes(), "src", "")])
    assert [r.reason.split(";")[0] for r in result.rejects] == ["missing provenance: no source", "missing provenance: no license"]


def test_odd_modes_are_normalised_to_rgb_jpeg():
    cmyk = io.BytesIO()
    _noise().convert("CMYK").save(cmyk, format="JPEG")
    sixteen = Image.fromarray((np.linspace(0, 65535, 96 * 80).reshape(80, 96)).astype(np.uint16))
    palette_alpha = _noise().convert("P")
    palette_alpha.info["transparency"] = 0
    rgba = _noise().convert("RGBA")
    rgba.putalpha(128)
    for data, expected in ((cmyk.getvalue(), "CMYK"), (_png(sixteen), "8-bit"), (_png(palette_alpha, transparency=0), "alpha"),
                           (_png(rgba), "alpha")):
        jpeg, rgb, notes = normalise_image(data)
        reopened = Image.open(io.BytesIO(jpeg))
        assert reopened.format == "JPEG" and reopened.mode == "RGB", expected
        assert any(expected in note for note in notes), (expected, notes)
    # 16-bit scaling keeps the gradient instead of clipping it to white
    _, rgb, _ = normalise_image(_png(sixteen))
    assert np.asarray(rgb.convert("L")).std() > 40


def test_animated_gif_keeps_its_first_frame():
    frames = [Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    jpeg, rgb, notes = normalise_image(buffer.getvalue())
    assert "animated: kept first of 2 frames" in notes
    red, _, blue = rgb.getpixel((32, 32))
    assert red > 200 and blue < 60


def test_exif_rotation_is_applied_and_size_bounded():
    image = _noise((200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    jpeg, rgb, notes = normalise_image(buffer.getvalue(), IngestOptions(max_side=64))
    assert rgb.size == (32, 64)  # portrait after rotation, longest side bounded
    assert any("exif_transpose" in n for n in notes) and any("resized" in n for n in notes)
    assert not Image.open(io.BytesIO(jpeg)).getexif()  # metadata stripped


def test_exact_and_near_duplicates_are_dropped():
    photo = shared_photos(2)
    original = photo[0].read_bytes()
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(original)).save(recompressed, format="JPEG", quality=60)
    result = ingest([_raw("a.jpg", original), _raw("a_copy.jpg", original), _raw("a_q60.jpg", recompressed.getvalue()),
                     _raw("b.jpg", photo[1].read_bytes())])
    assert [record.filename for record, _ in result.images] == ["a.jpg", "b.jpg"]
    reasons = {r.item: r.reason for r in result.rejects}
    assert reasons["a_copy.jpg"].startswith("exact duplicate of a.jpg")
    assert reasons["a_q60.jpg"].startswith("near duplicate of a.jpg")


def test_folder_input_accounts_for_every_file(tmp_path):
    photos = shared_photos(2)
    folder = write_folder(tmp_path / "in", [(p.name, p.read_bytes(), "d") for p in photos] + [("broken.jpg", b"", "d")])
    (folder / "unlisted.jpg").write_bytes(photos[0].read_bytes())
    raws = list(read_inputs({"kind": "folder", "path": str(folder)}))
    assert sorted(r.name for r in raws) == sorted([p.name for p in photos] + ["broken.jpg", "unlisted.jpg"])
    result = ingest(raws)
    assert len(result.images) + len(result.rejects) == len(raws)
    assert {r.item: r.reason.split(":")[0] for r in result.rejects} == {"broken.jpg": "zero-byte file",
                                                                        "unlisted.jpg": "missing provenance"}


def test_dataset_input_reads_an_image_column(tmp_path):
    import datasets

    photos = shared_photos(2)
    table = datasets.Dataset.from_dict({"image": [{"bytes": p.read_bytes(), "path": p.name} for p in photos],
                                        "credit": ["a", "b"]}, features=datasets.Features({"image": datasets.Image(), "credit": datasets.Value("string")}))
    table.save_to_disk(str(tmp_path / "ds"))
    raws = list(read_inputs({"kind": "dataset", "path": str(tmp_path / "ds"), "license": "CC BY 2.0", "source_column": "credit"}))
    assert [r.source for r in raws] == ["a", "b"] and all(r.license == "CC BY 2.0" and r.data for r in raws)
    assert len(ingest(raws).images) == 2
    in_memory = list(read_inputs({"kind": "dataset", "dataset": table, "license": "CC0", "source": "mine"}))
    assert [r.data for r in in_memory] == [r.data for r in raws] and in_memory[0].source == "mine"


def test_parallel_normalisation_admits_inputs_in_input_order(tmp_path, monkeypatch):
    """The executor normalises several inputs at once in threads but dedups them one at a time in input
    order: the outcome is the one `Ingestor.add` gives input by input, whatever the threads do."""
    from generation.engine import executor
    from generation.steps.ingest import Ingest
    from tests.generation_pipeline.conftest import config_for

    photos = [p.read_bytes() for p in shared_photos(6)]
    recompressed = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).save(recompressed, format="JPEG", quality=60)
    entries = [(f"p{i}.jpg", data, "d") for i, data in enumerate(photos)]
    entries[3:3] = [("copy_of_p1.jpg", photos[1], "d"), ("p0_q60.jpg", recompressed.getvalue(), "d"), ("empty.jpg", b"", "d")]
    folder = write_folder(tmp_path / "in", entries)
    expected = ingest(read_inputs({"kind": "folder", "path": str(folder)}))

    monkeypatch.setattr(executor, "INGEST_WORKERS", 3)
    monkeypatch.setattr(executor, "INGEST_WINDOW", 4)
    run = executor.Executor(config_for(folder), tmp_path / "out", show_progress=False)
    images, _ = run._ingest(Ingest())
    assert images == sorted((record for record, _ in expected.images), key=lambda r: r.image_id)
    assert run.rejects == expected.rejects and len(run.rejects) == 3
    for record, jpeg in expected.images:
        assert (tmp_path / "out" / "images" / f"{record.image_id}.jpg").read_bytes() == jpeg


def test_a_large_jpeg_is_decoded_at_reduced_scale_to_the_same_image_to_the_eye():
    """A JPEG at least twice `max_side` decodes at 1/2, 1/4 or 1/8 scale (several times faster) before the
    LANCZOS resize: the result is the one of decoding every pixel, within a fraction of a grey level."""
    photo = Image.open(shared_photos(1)[0]).convert("RGB")
    large = photo.resize((photo.width * 5, photo.height * 5), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    large.save(buffer, format="JPEG", quality=92)
    every_pixel = _png(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))  # a PNG is never drafted

    jpeg, rgb, notes = normalise_image(buffer.getvalue())
    _, reference, reference_notes = normalise_image(every_pixel)
    assert rgb.size == reference.size and max(rgb.size) == 1024 and notes == reference_notes
    assert np.abs(np.asarray(rgb, dtype=float) - np.asarray(reference, dtype=float)).mean() < 1.0
    assert dhash(rgb) == dhash(reference)
    assert Image.open(io.BytesIO(jpeg)).size == rgb.size


def _read_in_a_thread(spec: dict, **options) -> list:
    """read_inputs(spec) in a daemon thread: a read that blocks forever fails the test instead of hanging it."""
    import threading

    raws: list = []
    reader = threading.Thread(target=lambda: raws.extend(read_inputs(spec, **options)), daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), "reading the inputs blocked"
    return raws


def test_a_fifo_in_the_manifest_is_rejected_without_being_opened_for_reading(tmp_path):
    import os

    folder = write_folder(tmp_path / "photos", [("a.jpg", jpeg_bytes(), "a stove")])
    os.mkfifo(folder / "x.jpg")
    with open(folder / "MANIFEST.csv", "a") as manifest:
        manifest.write("x.jpg,test/x,CC0,,a pipe\n")
    raws = _read_in_a_thread({"kind": "folder", "path": str(folder)})
    assert [raw.name for raw in raws] == ["a.jpg", "x.jpg"]
    assert raws[1].data is None and raws[1].error.endswith("but is not a regular file (a FIFO); only image files are read")


def test_a_file_over_the_size_limit_is_rejected_unread(tmp_path):
    folder = write_folder(tmp_path / "photos", [("a.jpg", jpeg_bytes(), "a stove"), ("big.jpg", b"", "huge")])
    with open(folder / "big.jpg", "wb") as big:
        big.truncate(3 * 2**20)  # sparse: 3 MB on paper, nothing on disk
    raws = _read_in_a_thread({"kind": "folder", "path": str(folder)}, max_file_mb=2)
    assert raws[0].data is not None and raws[1].data is None
    assert "is 3 MB, over the 2 MB limit for one input (ingest.max_file_mb); not read" in raws[1].error


def test_a_listed_symlink_out_of_the_folder_is_one_input_with_one_reject(tmp_path):
    (tmp_path / "outside.jpg").write_bytes(jpeg_bytes(color=(0, 90, 200)))
    folder = write_folder(tmp_path / "photos", [("a.jpg", jpeg_bytes(), "a stove")])
    (folder / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    (folder / "alias.jpg").symlink_to(folder / "a.jpg")  # another name for a listed file: not a new input
    with open(folder / "MANIFEST.csv", "a") as manifest:
        manifest.write("link.jpg,test/link,CC0,,a link out\n")
    raws = list(read_inputs({"kind": "folder", "path": str(folder)}))
    assert [raw.name for raw in raws] == ["a.jpg", "link.jpg"]
    assert raws[1].data is None and "outside the input folder" in raws[1].error
