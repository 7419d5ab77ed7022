"""Step 1, ingest: photos (+ provenance) in, normalised JPEGs + rejects-with-reasons out. Never raises on
bad input: every input file ends up either as an `ImageRecord` or as a `Reject` naming the file and why.

Inputs (the run config's `input:` section):
* ``kind: folder``: a folder of images with a ``MANIFEST.csv`` (columns ``file``, ``license``, a source as
  ``source`` or ``source_repo``/``source_path``/``commit``, optional ``attribution_url`` and ``description``).
* ``kind: manifest``: a CSV or JSONL file with one row per image: ``file`` (or ``path``, relative to the
  manifest), ``source``, ``license``, optional ``attribution_url``, ``description``.
* ``kind: dataset``: a `datasets` image column: a Hub id or a local dataset directory (``path``) or an
  in-memory ``datasets.Dataset`` (``dataset``, from Python), ``split``,
  ``image_column``, and either ``source``/``license`` (fixed values) or ``source_column``/``license_column``.

Normalisation: EXIF orientation applied, RGB (CMYK converted, 16-bit scaled to 8-bit, palette/alpha
composited on white), longest side bounded (``max_side``, default 1024; a JPEG at least twice that is
decoded at 1/2, 1/4 or 1/8 scale first), re-encoded as JPEG without metadata. Animated images keep their FIRST frame (that is the frame the screen step judges and the release
ships; a note records it). Rejected with a reason: zero-byte, non-image, corrupt or truncated files,
decompression bombs (more than ``max_pixels`` pixels), images smaller than ``min_side``, missing
provenance, exact duplicates (same normalised bytes) and near duplicates (64-bit dHash within
``near_duplicate_distance`` bits of an image already kept).
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from generation.engine.records import INGEST, ImageRecord, Reject
from generation.engine.store import read_jsonl
from generation.release.dedup import PhotoIndex
from rms_dataset import image_id_for

# Bump when `normalise_image` can produce other bytes for the same input: it enters ingest's fingerprint,
# so no checkpoint of photos normalised the old way is reused (2: large JPEGs decoded at reduced scale).
NORMALISE_VERSION = 2

MAX_FILE_MB = 128  # the largest input file read (a photo is rarely a tenth of it); bigger ones are rejected unread

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class IngestOptions:
    max_side: int = 1024
    min_side: int = 32
    max_pixels: int = 40_000_000
    jpeg_quality: int = 90
    near_duplicate_distance: int = 4


@dataclass(frozen=True)
class RawImage:
    """One input before normalisation: where it came from, its bytes (or None if unreadable)."""

    name: str
    data: bytes | None
    source: str
    license: str
    attribution: str = ""
    description: str = ""
    error: str = ""  # set when the input could not even be read


class ImageRejected(Exception):
    """Raised by `normalise_image` with the reason an input is unusable."""


# --------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------


def normalise_image(data: bytes, options: IngestOptions = IngestOptions()) -> tuple[bytes, Image.Image, list[str]]:
    """Return (JPEG bytes, the RGB image, notes on what was changed) or raise ImageRejected."""
    if not data:
        raise ImageRejected("zero-byte file")
    notes: list[str] = []
    try:
        # The pixel limits are checked here, not by turning PIL's DecompressionBombWarning into an error:
        # `warnings.catch_warnings` is not thread-safe, and inputs are normalised in parallel threads.
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > options.max_pixels:
            raise ImageRejected(
                f"decompression bomb: {width}x{height} = {width * height} pixels exceeds max_pixels={options.max_pixels}"
            )
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            raise ImageRejected(f"decompression bomb: {width}x{height} = {width * height} pixels exceeds PIL's "
                                f"MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS}")
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            image.seek(0)
            notes.append(f"animated: kept first of {frames} frames")
        if image.format == "JPEG" and max(width, height) >= 2 * options.max_side:
            # decode at 1/2, 1/4 or 1/8 scale (libjpeg's scaled IDCT) where that still covers the final size:
            # several times faster than decoding every pixel and resampling them all
            scale = options.max_side / max(width, height)
            image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"decompression bomb: {error}") from None
    except UnidentifiedImageError:
        raise ImageRejected("not an image (PIL cannot identify the file format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageRejected(f"corrupt or truncated image: {error}") from None

    # The decoded image is ours alone: it is transposed, converted and resized without defensive copies.
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block: keep pixels as stored
        orientation, notes = None, notes + ["unreadable EXIF ignored"]
    shown = (width, height)  # the full size as displayed (a drafted JPEG decodes smaller)
    if orientation not in (None, 1):
        try:
            image = ImageOps.exif_transpose(image)
            shown = (height, width) if orientation in (5, 6, 7, 8) else shown
        except Exception:
            notes.append("unreadable EXIF ignored")
        notes.append(f"exif_transpose (orientation {orientation})")
    rgb = _to_rgb(image, notes)
    if min(shown) < options.min_side:
        raise ImageRejected(f"too small: {shown[0]}x{shown[1]} (min_side={options.min_side})")
    if max(shown) > options.max_side:
        if max(rgb.size) > options.max_side:
            rgb.thumbnail((options.max_side, options.max_side), Image.Resampling.LANCZOS)
        notes.append(f"resized to {rgb.size[0]}x{rgb.size[1]}")
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=options.jpeg_quality, optimize=True)
    return buffer.getvalue(), rgb, notes


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(array.max()), 1.0)
        scaled = np.clip(array / top * 255.0, 0, 255).astype(np.uint8)
        notes.append(f"{mode} scaled to 8-bit")
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"{mode} with alpha composited on white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    notes.append(f"{mode}->RGB")
    return image.convert("RGB")


THUMBNAIL_SIDE = 256


def thumbnail_jpeg(image: Image.Image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG preview (the gallery's; never released): `image` reduced by the integer factor that
    keeps its long side between `side` and 2 x `side` (a box filter: a fraction of a resize's cost)."""
    factor = max(1, max(image.size) // side)
    small = image.reduce(factor) if factor > 1 else image
    buffer = io.BytesIO()
    (small if small.mode == "RGB" else small.convert("RGB")).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def dhash(image: Image.Image, size: int = 8) -> int:
    """64-bit difference hash: grey (size+1)x size thumbnail, one bit per horizontal gradient sign."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


# --------------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------------


def read_inputs(spec: dict[str, Any], max_file_mb: int = MAX_FILE_MB) -> Iterator[RawImage]:
    """Every input of `spec` (the run config's `input:`), read through `read_input_file`: a file that is
    not a regular file or is over `max_file_mb` MB is never read (its RawImage carries why)."""
    kind = spec.get("kind", "folder")
    limit = max_file_mb * 2**20
    if kind == "folder":
        yield from _read_folder(Path(spec["path"]), spec.get("manifest", "MANIFEST.csv"), limit)
    elif kind == "manifest":
        path = Path(spec["path"])
        yield from _read_rows(_locate(read_manifest(path), path.parent.resolve()), path.parent, str(path), limit)
    elif kind == "dataset":
        yield from _read_dataset(spec, limit)
    else:
        raise ValueError(f"input.kind must be folder, manifest or dataset, got {kind!r}")


MANIFEST_NAME_COLUMNS = ("file", "path")


def read_manifest(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for every row of a CSV or JSONL manifest, where is ``"line 3"`` (CSV) or ``"row 3"``
    (JSONL). A UTF-8 byte-order mark (what Excel writes) is skipped; text that is not UTF-8, a CSV without a
    ``file`` column or a bad JSONL line is a ValueError naming the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found (every image needs source + license provenance)")
    text = _manifest_text(path)
    if path.suffix == ".jsonl":
        rows = read_jsonl(path, "fix or remove the line")
        bad = next((number for number, row in enumerate(rows, 1) if not isinstance(row, dict)), None)
        if bad is not None:
            raise ValueError(f"{path}: row {bad} is not a JSON object; each line needs file, source and license")
        return [(f"row {number}", row) for number, row in enumerate(rows, 1)]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name, given in (("file", any(n in columns for n in MANIFEST_NAME_COLUMNS)),
                                        ("license", "license" in columns)) if not given]
    if missing:
        raise ValueError(f"{path}:1: no {' and no '.join(repr(name) for name in missing)} column (columns: "
                         f"{', '.join(columns) or 'none'}); the header needs file, source and license")
    reader.fieldnames = columns
    return [(f"line {reader.line_num}", row) for row in reader]


def _manifest_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x} at column {column}); "
                         "save the manifest as UTF-8 (Excel: 'CSV UTF-8')") from None


def _provenance(row: dict[str, Any]) -> tuple[str, str, str, str]:
    source = (row.get("source") or "").strip()
    if not source and row.get("source_repo"):
        source = f"{row['source_repo']}/{row.get('source_path', '')}"
        if row.get("commit"):
            source += f"@{row['commit']}"
    attribution = (row.get("attribution_url") or row.get("attribution") or "").strip()
    return source, (row.get("license") or "").strip(), attribution, (row.get("description") or "").strip()


def listed_name(row: dict[str, Any]) -> str:
    return str(row.get("file") or row.get("path") or "").strip()


def _resolved(root: Path, name: str) -> Path:
    """``(root / name).resolve()`` for an already resolved ``root``: a plain file name that is not a symlink
    (the common case) costs one lstat, not one per component of the whole path."""
    path = root / name
    if "/" in name or name in ("", ".", "..") or path.is_symlink():
        return path.resolve()
    return path


def _inside(root: Path, name: str) -> Path | None:
    """``root / name`` resolved (``root`` is resolved already), or None when it lies outside ``root``
    (``../x.jpg``, an absolute path, a symlink pointing out): a manifest only ever names files of its own
    folder."""
    path = _resolved(root, name)
    return path if path.is_relative_to(root) and path != root else None


def _locate(rows: Iterable[tuple[str, dict[str, Any]]], root: Path) -> list[tuple[str, dict[str, Any], str, Path | None]]:
    """(where, row, listed name, resolved path or None when outside `root`) of every manifest row: each
    path is resolved once, here."""
    located = []
    for line, row in rows:
        name = listed_name(row)
        located.append((line, row, name, _inside(root, name) if name else None))
    return located


def _read_rows(located, base: Path, where: str, max_bytes: int) -> Iterator[RawImage]:
    for line, row, name, path in located:
        source, license_, attribution, description = _provenance(row)
        if not name:
            yield RawImage(f"{where} {line}", None, source, license_, error="manifest row has no 'file' column value")
            continue
        if path is None:
            yield RawImage(name, None, source, license_, error=f"{where} {line}: {name} is outside the input folder "
                           f"{base}; a manifest may only list files inside its own folder")
            continue
        data, error = read_input_file(path, max_bytes)
        yield RawImage(name, data, source, license_, attribution, description,
                       f"listed in {where} but {error}" if error else "")


def _read_folder(folder: Path, manifest_name: str, max_bytes: int) -> Iterator[RawImage]:
    """The manifest's rows, then every other visible file of the folder (it has no provenance: rejected
    as such). A file is one input however it is reached: a listed name, or a link to a listed file, is
    not read again."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: input folder not found")
    manifest = folder / manifest_name
    root = folder.resolve()
    located = _locate(read_manifest(manifest) if manifest.exists() else [], root)
    listed_names = {os.path.normpath(name) for _, _, name, _ in located if name}
    listed_paths = {path for *_, path in located if path is not None}
    yield from _read_rows(located, folder, str(manifest), max_bytes)
    for path in sorted(folder.iterdir()):
        if path.name in listed_names or path.name == manifest_name or path.name.startswith(".") or not path.is_file():
            continue
        resolved = _resolved(root, path.name)
        if resolved in listed_paths:
            continue
        if not resolved.is_relative_to(root):
            yield RawImage(path.name, None, "", "", error=f"a link to {resolved}, outside the input folder, and not in "
                           "the manifest; not read")
            continue
        data, error = read_input_file(resolved, max_bytes)
        yield RawImage(path.name, data, "", "", error=error)


def read_input_file(path: Path, max_bytes: int) -> tuple[bytes | None, str]:
    """(the file's bytes, "") or (None, why it was not read). Checked before reading, on the opened file
    itself: only a regular file (a FIFO would block the run forever, a device never ends) of at most
    `max_bytes` bytes (a huge file would be read whole into memory)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            return None, f"is not a regular file ({_file_kind(info.st_mode)}); only image files are read"
        if info.st_size > max_bytes:
            return None, (f"is {info.st_size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit for one input "
                          "(ingest.max_file_mb); not read")
        with os.fdopen(os.dup(handle), "rb") as reader:
            data = reader.read(max_bytes + 1)
        if len(data) > max_bytes:  # it grew while being read
            return None, f"grew over the {max_bytes / 2**20:.0f} MB limit for one input (ingest.max_file_mb) while read"
        return data, ""
    except OSError as error:
        return None, f"cannot be read: {error.strerror or error}"
    finally:
        os.close(handle)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _read_dataset(spec: dict[str, Any], max_bytes: int) -> Iterator[RawImage]:
    import datasets

    name, split, column = spec.get("path", "dataset"), spec.get("split", "train"), spec.get("image_column", "image")
    if spec.get("dataset") is not None:  # an in-memory datasets.Dataset (programmatic use)
        table = spec["dataset"]
    elif Path(name).is_dir() and (Path(name) / "dataset_info.json").exists():
        table = datasets.load_from_disk(name)
        table = table[split] if isinstance(table, datasets.DatasetDict) else table
    else:
        table = datasets.load_dataset(name, split=split, revision=spec.get("revision"))
    if column not in table.column_names:
        raise KeyError(f"dataset {name}: no image column {column!r} (columns: {table.column_names}); set input.image_column")
    table = table.cast_column(column, datasets.Image(decode=False))
    for index, row in enumerate(table):
        value = row[column] or {}
        data, error = value.get("bytes"), "dataset row has no image bytes"
        if data is None and value.get("path"):
            data, error = read_input_file(Path(value["path"]), max_bytes)
            error = f"its image file {value['path']} {error}"
        source = row.get(spec["source_column"]) if spec.get("source_column") else spec.get("source", f"{name}[{split}]#{index}")
        license_ = row.get(spec["license_column"]) if spec.get("license_column") else spec.get("license", "")
        description = row.get(spec["description_column"], "") if spec.get("description_column") else ""
        attribution = row.get(spec["attribution_column"], "") if spec.get("attribution_column") else ""
        yield RawImage(f"{name}[{split}]#{index}", data, str(source or ""), str(license_ or ""), str(attribution or ""),
                       str(description or ""), "" if data is not None else error)


# --------------------------------------------------------------------------------------------------------
# The step
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalised:
    """One input after `Ingestor.normalise`: depends on that input alone, so inputs normalise in parallel."""

    jpeg: bytes = field(repr=False)
    image_id: str
    dhash: int
    size: tuple[int, int]
    notes: tuple[str, ...]
    thumbnail: bytes = field(default=b"", repr=False)  # `thumbnail_jpeg` of the normalised image


class Ingestor:
    """Normalises inputs (`normalise`: pure, thread-safe) and admits them one at a time in input order
    (`admit`: exact and near dedup against everything kept before, through an index: `dedup.PhotoIndex`;
    a kept input is remembered; a resumed run `remember`s what its checkpoints kept instead).
    `add` is both. `known_hashes` are (image_id, dhash) of images already released (a base release): exact
    and near duplicates of those are rejected too."""

    def __init__(self, options: IngestOptions = IngestOptions(), known_hashes: Iterable[tuple[str, int]] = ()):
        self.options = options
        self.kept_ids: dict[str, str] = {}
        self.kept_hashes = PhotoIndex(options.near_duplicate_distance)
        for image_id, fingerprint in known_hashes:
            self.kept_ids[image_id] = f"{image_id} in the base release"
            self.kept_hashes.add(fingerprint, f"{image_id} in the base release")

    def remember(self, record: ImageRecord) -> None:
        self.kept_ids[record.image_id] = record.filename
        self.kept_hashes.add(int(record.dhash, 16), record.filename)

    def add(self, raw: RawImage) -> tuple[ImageRecord, bytes] | Reject:
        return self.admit(raw, self.normalise(raw))

    def normalise(self, raw: RawImage) -> Normalised | Reject:
        """The input's normalised JPEG, id and dHash, or a reject (never raises for bad input)."""
        def reject(reason: str) -> Reject:
            return Reject("image", INGEST, reason, raw.name)

        if raw.error:
            return reject(raw.error)
        if not raw.source or not raw.license:
            missing = " and ".join(n for n, v in (("source", raw.source), ("license", raw.license)) if not v)
            return reject(f"missing provenance: no {missing}; add the file to the input's manifest with source and license")
        try:
            jpeg, rgb, notes = normalise_image(raw.data or b"", self.options)
        except ImageRejected as error:
            return reject(str(error))
        except Exception as error:  # anything PIL throws that we did not foresee: still a reason, never a crash
            return reject(f"unreadable image ({type(error).__name__}: {error})")
        return Normalised(jpeg, image_id_for(jpeg), dhash(rgb), rgb.size, tuple(notes), thumbnail_jpeg(rgb))

    def admit(self, raw: RawImage, normalised: Normalised | Reject) -> tuple[ImageRecord, bytes] | Reject:
        """Keep `normalised` unless it duplicates an image kept before (in input order) or known."""
        if isinstance(normalised, Reject):
            return normalised
        image_id = normalised.image_id
        if image_id in self.kept_ids:
            return Reject("image", INGEST, f"exact duplicate of {self.kept_ids[image_id]}", raw.name, image_id)
        limit = self.options.near_duplicate_distance
        near = self.kept_hashes.first_within(normalised.dhash)
        if near is not None:
            return Reject("image", INGEST, f"near duplicate of {near} (dHash within {limit} bits)", raw.name, image_id)
        record = ImageRecord(image_id, raw.name, raw.source, raw.license, raw.attribution, raw.description,
                             f"{normalised.dhash:016x}", normalised.size[0], normalised.size[1], normalised.notes)
        self.remember(record)
        return record, normalised.jpeg


class Ingest:
    """The pipeline's source step: the run's inputs (the first ``max_images``, this shard's slice) through an
    ``Ingestor``. Not a model call; the executor checkpoints each input's outcome under a key chained over the
    content of every input before it (an earlier file that changes re-ingests what follows: dedup depends
    on it)."""

    name = stage = INGEST

    def params(self, config, known_hashes) -> dict[str, Any]:
        options = config.ingest_options()
        options = options.model_dump() if hasattr(options, "model_dump") else asdict(options)
        return {"options": options, "known": sorted(known_hashes), "normalise": NORMALISE_VERSION}

    def inputs(self, config) -> Iterator[RawImage]:
        return islice(read_inputs(config.resolved_input(), config.ingest.max_file_mb), config.max_images)
