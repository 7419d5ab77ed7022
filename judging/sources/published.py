"""The one registry of where each benchmark's authors publish it, read by `python -m eval.benchmarks fetch`.

Per registered benchmark source: the Hub dataset repo, the pinned revision (a commit sha; ``None`` = the
repo's ``main``, resolved at fetch time and recorded), which repo files are annotations, which are images
(glob patterns, or archives to extract), where the images are relative to the fetched folder, and the sha256
of files whose bytes we have checked. A benchmark its authors do not publish on the Hub has ``repo_id: None``
and a ``note`` saying where it is published instead; fetch says so instead of guessing a mirror.

    publication = PUBLISHED["vlsbench"]
    publication.repo_id           # 'Foreshhh/vlsbench'
    load_publications("my.yaml")  # the same records from YAML (a mirror, a fixture): {name: Publication}

Not checked from here (no Hub access while this was written, only the repos' Hub pages): the revisions are
unpinned and VLGuard's archive layout is as its README describes; ``fetch`` records the commit it got, and
pinning is putting that commit in ``revision``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from typed_config import ConfigError, StrictModel, load_yaml, parse_config

COMMIT = re.compile(r"[0-9a-f]{40}")


class Publication(StrictModel):
    """Where one benchmark's files are published (``repo_id`` None: not on the Hub; ``note`` says where)."""

    repo_id: str | None = None
    revision: str | None = None
    gated: bool = False
    annotations: list[str] = Field(default_factory=list)   # repo paths; the first is the source's annotation file
    images: list[str] = Field(default_factory=list)        # glob patterns of image files in the repo
    image_archives: list[str] = Field(default_factory=list)  # repo paths of zip/tar archives, extracted in place
    image_root: str | None = None                          # the images folder relative to the fetched folder
    sha256: dict[str, str] = Field(default_factory=dict)   # repo path -> sha256 we pin (checked on every fetch)
    note: str = ""

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [path for path, digest in value.items() if not re.fullmatch(r"[0-9a-f]{64}", digest)]
        if bad:
            raise ValueError(f"sha256 of {bad} is not 64 lowercase hex digits")
        return value

    @property
    def pinned(self) -> bool:
        return self.revision is not None and COMMIT.fullmatch(self.revision) is not None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id}"


PUBLISHED: dict[str, Publication] = {
    "siuo": Publication(note="not on the Hub from its authors: annotations in GitHub sinwang20/SIUO (data/), images "
                             "as a Google Drive / Baidu zip linked from its README; the shared copy has the "
                             "annotations (oneonlee/SIUO is a third-party Hub upload, format not checked)"),
    "mssbench": Publication(repo_id="kzhou35/mssbench", annotations=["combined.json"],
                            images=["chat/*", "embodied/*"], image_root=".",
                            note="the dataset eric-ai-lab/MSSBench's README points to (combined.json, chat/, embodied/ "
                                 "as listed on its Hub page); main was 12396d2 'data v1.1' when seen, full sha not "
                                 "read here; v1.0 is 4d252925b58f1997bc0e8ea339b74ab9343d953d"),
    "vlsbench": Publication(repo_id="Foreshhh/vlsbench", annotations=["data.json"], image_archives=["imgs.tar"],
                            image_root=".",
                            note="imgs.tar (2.45 GB) extracts to imgs/<id>.png, the data.json image_path; commit "
                                 "968ddcdcdb9e520d9ab8fd45d77872242bf73858 has both files, data.json was re-uploaded "
                                 "later (4fea7d3); not pinned until its format is checked against the adapter"),
    "vlguard": Publication(repo_id="ys-zong/VLGuard", gated=True, annotations=["test.json", "train.json"],
                           image_archives=["test.zip"], image_root=".",
                           note="gated (research-use terms); accept them on the dataset page first"),
    "spa_vl": Publication(repo_id="sqrti/SPA-VL", note="read directly from the Hub by the spa_vl source "
                                                       "(hub_dataset=sqrti/SPA-VL, revision=...); nothing to fetch"),
    "figstep": Publication(note="not on the Hub: GitHub ThuCCSLab/FigStep (data/question/*.csv, data/images/); the "
                                "shared copy has the CSVs and `images: rendered` renders every image here"),
    "mm_safetybench": Publication(note="not on the Hub from its authors: GitHub isXinLiu/MM-SafetyBench "
                                       "(data/processed_questions/) with images from a link in its README; "
                                       "PKU-Alignment/MM-SafetyBench is a parquet re-upload the adapter does not read"),
    "salad": Publication(note="not on the Hub: GitHub xinyuelou/SaLAD (data/data.json, data/image.zip, a preview)"),
    "vlsu": Publication(note="not on the Hub: GitHub apple/ml-vlsu (data/VLSU.csv); images are web URLs, "
                             "not distributed"),
    "mis": Publication(note="on the Hub in the authors' Tuwhy collection (repo id not checked here); the mis source "
                            "reads a local data_dir"),
}


def load_publications(path: str | Path) -> dict[str, Publication]:
    """``{name: Publication}`` from a YAML mapping of benchmark name to the fields above (a mirror, a fixture)."""
    data = load_yaml(path, what="benchmark registry")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a benchmark registry is a mapping of benchmark name -> publication")
    return {str(name): parse_config(Publication, entry, source=f"{path}: {name}") for name, entry in data.items()}
