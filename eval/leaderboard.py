"""Leaderboard of training datasets from a results directory (cells written by eval.grid or eval.score).

`python -m eval.leaderboard RESULTS_DIR [--out DIR] [--insert-into README.md]`

Writes ``leaderboard.md`` (links to each cell's result JSON, samples.jsonl and judge metadata), ``leaderboard.csv``,
``leaderboard.json``, ``leaderboard.png`` (matplotlib, Agg) and ``leaderboard.html`` (self-contained page,
columns sortable by clicking their header, a judge column linking each judge's judge_metadata.json).
``leaderboard.json`` gives ``rank`` as an integer (null for reference rows and unranked sections). Rows are
built in eval.leaderboard_rows, rendered in eval.leaderboard_text (md, csv, json), eval.leaderboard_html and
eval.leaderboard_png. ``--insert-into`` replaces the text between
``<!-- rms-leaderboard:start -->`` and ``<!-- rms-leaderboard:end -->`` in a dataset card or README with the
markdown tables.

What it refuses to do, so that it cannot mislead (docs/eval.md, "Leaderboard"):

* rank rows scored on different benchmark sets against each other: rows are grouped into sections by the set
  of benchmarks their score counts, and ranked only inside a section;
* count a single-class cell (a detection rate, which a constant judge wins): such cells are shown, marked
  "not in score";
* hide what a number rests on: every format carries each cell's 95% CI, n, metric kind, detection rate and
  over-refusal rate, missing images and the text-only label;
* narrow a score's CI with a degenerate cell CI: the score's interval comes from the class counts
  (`eval.metrics.dataset_score`), not from the cells' percentile intervals.

A cell on one of its judge's own training sources (``training.held_out_from``, recorded from the adapter's
metadata by eval.score and eval.grid alike) is left out, as the grid never scores it (`eval.provenance`).

Reference rows (sanity judges: ``constant:*``, ``random:*``, ``oracle:*``) are shown in every section whose
benchmarks they were scored on, with their score over that section's benchmarks: the floor (0.5) and a known
ceiling next to the real judges. Fields of the cell contract that a cell lacks (older results) are shown as
unknown, never guessed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eval.leaderboard_html import render_html
from eval.leaderboard_png import render_png
from eval.leaderboard_rows import load_sections
from eval.leaderboard_text import render_json, render_markdown, write_csv

START_MARKER = "<!-- rms-leaderboard:start -->"
END_MARKER = "<!-- rms-leaderboard:end -->"


def insert_between_markers(file: Path, section: str) -> None:
    text = file.read_text(encoding="utf-8")
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"{file}: needs the markers {START_MARKER} and {END_MARKER} (in that order) around the "
                         "place the leaderboard goes; add them and rerun")
    file.write_text(text[: start + len(START_MARKER)] + "\n" + section + text[end:], encoding="utf-8")


def write_leaderboard(results_dir: Path | str, out_dir: Path | str | None = None) -> dict[str, Path]:
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir else results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = load_sections(results_dir)
    prefix = os.path.relpath(results_dir, out_dir) + "/" if out_dir.resolve() != results_dir.resolve() else ""
    paths = {kind: out_dir / f"leaderboard.{kind}" for kind in ("md", "csv", "json", "png", "html")}
    paths["md"].write_text("# RMS dataset leaderboard\n\n" + render_markdown(sections, prefix), encoding="utf-8")
    write_csv(sections, paths["csv"])
    paths["json"].write_text(render_json(sections), encoding="utf-8")
    render_png(sections, paths["png"])
    paths["html"].write_text(render_html(sections, paths["png"], prefix), encoding="utf-8")
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="results directory of eval.grid (its cells/ folder is read)")
    parser.add_argument("--out", help="where to write leaderboard.{md,csv,json,png,html} (default: RESULTS_DIR)")
    parser.add_argument("--insert-into", metavar="FILE",
                        help=f"also put the markdown tables between {START_MARKER} and {END_MARKER} in FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = write_leaderboard(args.results_dir, args.out)
        if args.insert_into:
            target = Path(args.insert_into)
            prefix = os.path.relpath(Path(args.results_dir), target.parent) + "/"
            insert_between_markers(target, render_markdown(load_sections(args.results_dir), prefix))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

