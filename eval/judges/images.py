"""The one image loader of eval: whatever a `JudgeExample.image` holds (PIL image, path, bytes, datasets dict)
becomes an RGB PIL image (`load_image`) or a content hash for cache keys (`image_sha256`)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from PIL import Image


def load_image(image: Any, *, where: str = "") -> Image.Image | None:
    """RGB PIL image, or None when the example has no image. A path that does not exist is an error."""
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, dict):  # datasets' Image feature without decoding: {"bytes": ..., "path": ...}
        if image.get("bytes"):
            return load_image(image["bytes"], where=where)
        return load_image(image.get("path"), where=where)
    if isinstance(image, (bytes, bytearray)):
        return Image.open(io.BytesIO(image)).convert("RGB")
    path = Path(image)
    if not path.exists():
        raise FileNotFoundError(f"{where}: image file {path} does not exist; fix the benchmark's image folder option")
    with Image.open(path) as opened:
        return opened.convert("RGB")


NO_IMAGE = "no image"
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def image_sha256(image: Any) -> str:
    """What identifies an example's pixels, for cache keys: the sha256 of the file or encoded bytes, of a
    PIL image's mode + size + raw pixels, or ``"no image"``. File digests are remembered per (path, size,
    mtime), so a rerun reads each image once."""
    if image is None:
        return NO_IMAGE
    if isinstance(image, Image.Image):
        digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
        digest.update(image.tobytes())
        return "pixels:" + digest.hexdigest()
    if isinstance(image, dict):
        return image_sha256(image.get("bytes") or image.get("path"))
    if isinstance(image, (bytes, bytearray)):
        return hashlib.sha256(image).hexdigest()
    path = Path(image)
    try:
        stat = path.stat()
    except OSError:
        raise FileNotFoundError(f"image file {path} does not exist; fix the benchmark's image folder option") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[key]


def image_bytes(image: Any, *, where: str = "") -> bytes:
    """The encoded bytes of an example's image, for a model request: a file's or a datasets dict's own bytes
    as stored, a PIL image as lossless PNG (the model sees exactly the pixels `load_image` gives)."""
    if isinstance(image, dict):
        return image["bytes"] if image.get("bytes") else image_bytes(image.get("path"), where=where)
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
    path = Path(image)
    if not path.exists():
        raise FileNotFoundError(f"{where}: image file {path} does not exist; fix the benchmark's image folder option")
    return path.read_bytes()
