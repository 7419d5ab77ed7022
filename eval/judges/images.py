"""Turn whatever a `JudgeExample.image` holds (PIL image, path, bytes, datasets dict) into an RGB PIL image."""

from __future__ import annotations

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
