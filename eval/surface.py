"""Surface features of a judge example: what a shallow probe can read without understanding anything.

`eval.audit` fits probes on these to find benchmark cells whose two classes differ in form (who wrote
them, how they were rendered) rather than only in safety. Three groups:

* **text style** (`text_style`): length, punctuation, pronouns by person, question form, digits and case,
  and counts of a closed list of function words ("to", "the", "this", "image"). None of these says what a
  request asks for, so a probe that separates the classes with them has found a difference in style.
* **image style** (`image_style`): size, aspect ratio, file format and bytes per pixel, brightness and
  contrast, the first and last inked row and column, and the row and column ink profiles of a 32x32
  thumbnail. What the image shows is not in them, only how it was made.
* **text n-grams** (`text_ngrams`): hashed word 1-2-grams and character 3-grams. These carry content as
  well as style (a harmful request has harmful words), so they measure how much the text alone gives away
  ("text-alone leakage" where the benchmark puts the risk in the image-text pair), not a confound.

A response-task example is read as its response (what a response judge labels) plus the request's
style features; every feature is a float, one fixed-length vector per example.
"""

from __future__ import annotations

import io
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from judging.records import JudgeExample

_WORD = re.compile(r"[A-Za-z']+")
PRONOUNS = {
    "first_singular": ("i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll"),
    "first_plural": ("we", "us", "our", "ours", "ourselves", "we're", "we've"),
    "second": ("you", "your", "yours", "yourself", "you're", "you've"),
    "third": ("he", "she", "they", "him", "her", "them", "his", "their", "theirs", "it", "its"),
}
FUNCTION_WORDS = (
    "a", "an", "the", "to", "of", "in", "on", "for", "with", "at", "by", "from", "about", "as", "into", "and",
    "or", "but", "if", "so", "that", "this", "these", "those", "there", "here", "what", "how", "why", "where",
    "when", "which", "who", "can", "could", "should", "would", "will", "do", "does", "is", "are", "be", "any",
    "some", "please", "image", "picture", "photo", "shown", "show", "tell", "give", "me",
)
QUESTION_OPENERS = ("what", "how", "why", "where", "when", "which", "who", "can", "could", "should", "would",
                    "will", "is", "are", "do", "does", "did", "may", "might", "shall")
PUNCTUATION = "?!.,;:*\"'()-"
THUMBNAIL = 32
N_HASHED = 2048


def _style_of(text: str) -> list[float]:
    text = text or ""
    words = [word.lower() for word in _WORD.findall(text)]
    n_words = len(words)
    counts = {word: 0 for word in FUNCTION_WORDS}
    for word in words:
        if word in counts:
            counts[word] += 1
    letters = [char for char in text if char.isalpha()]
    stripped = text.strip()
    features = [
        np.log1p(len(text)), np.log1p(n_words), (sum(map(len, words)) / n_words) if n_words else 0.0,
        text.count("\n"), sum(char.isdigit() for char in text),
        (sum(char.isupper() for char in letters) / len(letters)) if letters else 0.0,
        float(stripped.endswith("?")), float(bool(words) and words[0] in QUESTION_OPENERS),
    ]
    features += [text.count(mark) for mark in PUNCTUATION]
    features += [sum(word in group for word in words) for group in PRONOUNS.values()]
    features += [counts[word] for word in FUNCTION_WORDS]
    return [float(value) for value in features]


STYLE_NAMES = (["log_chars", "log_words", "mean_word_length", "newlines", "digits", "upper_ratio", "ends_with_?",
                "question_opener"] + [f"count {mark}" for mark in PUNCTUATION]
               + [f"pronouns {group}" for group in PRONOUNS] + [f"word {word!r}" for word in FUNCTION_WORDS])


def text_style(example: JudgeExample) -> list[float]:
    """Style features of the text a judge labels: the request (query task), or the response followed by
    the request's (response task)."""
    if example.response is None:
        return _style_of(example.text)
    return _style_of(example.response) + _style_of(example.text)


def text_style_names(response_task: bool) -> list[str]:
    if not response_task:
        return list(STYLE_NAMES)
    return [f"response {name}" for name in STYLE_NAMES] + [f"request {name}" for name in STYLE_NAMES]


def _bucket(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "big") % N_HASHED


def text_ngrams(example: JudgeExample) -> np.ndarray:
    """Hashed word 1-2-grams and character 3-grams of the labelled text (log counts, ``N_HASHED`` buckets)."""
    text = (example.response if example.response is not None else example.text) or ""
    vector = np.zeros(N_HASHED, dtype=np.float32)
    words = [word.lower() for word in _WORD.findall(text)]
    tokens = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    lowered = f" {text.lower()} "
    tokens += [f"c:{lowered[i:i + 3]}" for i in range(len(lowered) - 2)]
    for token in tokens:
        vector[_bucket(token)] += 1.0
    return np.log1p(vector)


IMAGE_NAMES = (["width", "height", "aspect", "log_pixels", "png", "jpeg", "other_format", "bytes_per_pixel",
                "brightness", "contrast", "ink_fraction", "first_ink_row", "last_ink_row", "first_ink_col",
                "last_ink_col"] + [f"row_ink {i}" for i in range(THUMBNAIL)] + [f"col_ink {i}" for i in range(THUMBNAIL)])


def image_style(image: Any) -> list[float] | None:
    """Style features of an image (a path, encoded bytes, a datasets ``{"bytes", "path"}`` dict or a PIL image);
    None when there is no image to read."""
    if image is None:
        return None
    from PIL import Image

    if isinstance(image, dict):  # datasets' Image feature without decoding (the RMS release's rows)
        return image_style(image.get("bytes") or image.get("path"))
    if isinstance(image, (str, Path, bytes, bytearray)):
        if isinstance(image, (bytes, bytearray)):
            n_bytes, source = len(image), io.BytesIO(image)
        else:
            if not Path(image).is_file():
                return None
            n_bytes, source = Path(image).stat().st_size, Path(image)
        with Image.open(source) as opened:
            file_format = opened.format or ""
            gray = np.asarray(opened.convert("L"), dtype=np.float32) / 255.0
    else:
        file_format = getattr(image, "format", None) or ""
        gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
        n_bytes = gray.size
    height, width = gray.shape
    ink = gray < 0.5
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    extent = [rows[0] / height, rows[-1] / height, cols[0] / width, cols[-1] / width] if rows.size else [1, 0, 1, 0]
    thumb = np.asarray(Image.fromarray((gray * 255).astype(np.uint8)).resize((THUMBNAIL, THUMBNAIL)),
                       dtype=np.float32) / 255.0
    features = [width, height, width / height, np.log(width * height), float(file_format == "PNG"),
                float(file_format == "JPEG"), float(file_format not in ("PNG", "JPEG")), n_bytes / (width * height),
                float(gray.mean()), float(gray.std()), float(ink.mean()), *extent]
    features += list(1.0 - thumb.mean(axis=1)) + list(1.0 - thumb.mean(axis=0))
    return [float(value) for value in features]
