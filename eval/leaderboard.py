"""Leaderboard of training datasets from a results directory (cells written by eval.grid or eval.score).

`python -m eval.leaderboard RESULTS_DIR [--out DIR] [--insert-into README.md]`

Writes ``leaderboard.md`` (sorted by dataset score, with 95% CIs and links to each cell's result JSON and
judge metadata), ``leaderboard.csv``, ``leaderboard.json``, ``leaderboard.png`` (matplotlib, Agg) and
``leaderboard.html`` (self-contained page, columns sortable by clicking their header). ``--insert-into``
replaces the text between ``<!-- rms-leaderboard:start -->`` and ``<!-- rms-leaderboard:end -->`` in a
dataset card or README with the markdown table.

Dataset score (docs/eval.md): the mean over the judge's held-out benchmarks of each cell's primary metric
(unsafe-class F1; detection rate on single-class benchmarks), plus the item-weighted mean. Its CI combines
the cells' bootstrap CIs assuming independent benchmarks (normal approximation).
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eval.score import read_result

START_MARKER = "<!-- rms-leaderboard:start -->"
END_MARKER = "<!-- rms-leaderboard:end -->"
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Cell:
    benchmark: str  # "<name> (<task>)"
    metric: str
    value: float | None
    ci: list[float] | None
    n_items: int
    n_unparseable: int
    path: str  # the result JSON, relative to the results directory


@dataclass
class Row:
    run_id: str
    dataset: str
    model: str
    train_fraction: float | None
    score: float | None
    score_ci: list[float] | None
    weighted_score: float | None
    n_benchmarks: int
    n_items: int
    n_unparseable: int
    judge_metadata: str | None  # path relative to the results directory, when the judge was trained
    cells: dict[str, Cell] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)  # benchmarks whose primary metric was undefined


def _combined_ci(cells: list[Cell], mean: float) -> list[float] | None:
    if any(cell.ci is None for cell in cells):
        return None
    se = math.sqrt(sum(((cell.ci[1] - cell.ci[0]) / (2 * Z95)) ** 2 for cell in cells)) / len(cells)
    return [max(0.0, mean - Z95 * se), min(1.0, mean + Z95 * se)]


def dataset_row(run_id: str, results: list[tuple[str, dict]], results_dir: Path) -> Row:
    """Aggregate one judge's cells into a leaderboard row (the dataset score and its variants)."""
    first = results[0][1]
    training = first.get("training") or {}
    cells, undefined = {}, []
    for path, result in results:
        bench = result["benchmark"]
        primary = result["primary"]
        key = f"{bench['name']} ({bench['task']})"
        cell = Cell(key, primary["metric"], primary["value"], primary.get("ci"), bench["n_items"],
                    result.get("n_unparseable", 0), path)
        if cell.value is None:
            undefined.append(key)
        cells[key] = cell
    scored = [cell for cell in cells.values() if cell.value is not None]
    score = sum(cell.value for cell in scored) / len(scored) if scored else None
    total = sum(cell.n_items for cell in scored)
    weighted = sum(cell.value * cell.n_items for cell in scored) / total if total else None
    metadata = None
    candidates = [results_dir / "judges" / run_id / "judge_metadata.json"]
    if training.get("judge_dir"):
        candidates.append(Path(training["judge_dir"]) / "judge_metadata.json")
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is not None:
        metadata = os.path.relpath(found, results_dir)
    return Row(
        run_id=run_id,
        dataset=training.get("dataset") or first["judge"].get("id", run_id),
        model=training.get("model") or str(first["judge"].get("base_model") or first["judge"].get("model") or "?"),
        train_fraction=training.get("train_fraction"),
        score=score, score_ci=_combined_ci(scored, score) if scored else None, weighted_score=weighted,
        n_benchmarks=len(scored), n_items=sum(cell.n_items for cell in cells.values()),
        n_unparseable=sum(cell.n_unparseable for cell in cells.values()),
        judge_metadata=metadata, cells=cells, undefined=undefined,
    )


def load_rows(results_dir: Path | str) -> list[Row]:
    """Every cell under ``RESULTS_DIR/cells`` (or RESULTS_DIR itself), grouped per judge, sorted best first."""
    results_dir = Path(results_dir)
    folder = results_dir / "cells" if (results_dir / "cells").is_dir() else results_dir
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no result files (*.json) in {folder}; run python -m eval.grid first")
    groups: dict[str, list[tuple[str, dict]]] = {}
    for file in files:
        result = read_result(file)  # schema_version checked here
        run_id = (result.get("training") or {}).get("run_id") or result["judge"]["id"]
        groups.setdefault(run_id, []).append((os.path.relpath(file, results_dir), result))
    rows = [dataset_row(run_id, results, results_dir) for run_id, results in groups.items()]
    return sorted(rows, key=lambda row: (row.score is None, -(row.score or 0.0), row.dataset, row.run_id))


def benchmark_columns(rows: list[Row]) -> list[str]:
    return sorted({key for row in rows for key in row.cells})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _fraction(row: Row) -> str:
    return "zero-shot" if row.train_fraction is None else f"{row.train_fraction:g}"


# --------------------------------------------------------------------------------------------- renderers


def render_markdown(rows: list[Row], link_prefix: str = "") -> str:
    columns = benchmark_columns(rows)
    header = ["Rank", "Training dataset", "Fraction", "Base model", "Score [95% CI]", "Weighted", "Benchmarks",
              *columns, "Judge"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(rows, start=1):
        cells = []
        for column in columns:
            cell = row.cells.get(column)
            cells.append("—" if cell is None else
                         f"[{_fmt(cell.value)}]({link_prefix}{cell.path}){_fmt_ci(cell.ci)}"
                         + (" (DR)" if cell.metric == "detection_rate" else ""))
        judge = f"[metadata]({link_prefix}{row.judge_metadata})" if row.judge_metadata else row.run_id
        lines.append("| " + " | ".join([str(rank), row.dataset, _fraction(row), row.model,
                                         f"**{_fmt(row.score)}**{_fmt_ci(row.score_ci)}", _fmt(row.weighted_score),
                                         str(row.n_benchmarks), *cells, judge]) + " |")
    notes = ("Score: mean over held-out benchmarks of unsafe-class F1, or detection rate (DR) on single-class "
             "benchmarks; Weighted: the same weighted by benchmark size. Each cell links to its result JSON. "
             "— : the benchmark is the judge's own training source (not scored) or was not in its grid.")
    unparseable = sum(row.n_unparseable for row in rows)
    if unparseable:
        notes += f" {unparseable} judge answers could not be parsed; they are scored as wrong."
    return "\n".join(lines) + "\n\n" + notes + "\n"


def write_csv(rows: list[Row], path: Path) -> None:
    columns = benchmark_columns(rows)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "run_id", "dataset", "train_fraction", "model", "score", "score_ci_low",
                         "score_ci_high", "weighted_score", "n_benchmarks", "n_items", "n_unparseable", *columns])
        for rank, row in enumerate(rows, start=1):
            ci = row.score_ci or [None, None]
            writer.writerow([rank, row.run_id, row.dataset, row.train_fraction, row.model, row.score, ci[0], ci[1],
                             row.weighted_score, row.n_benchmarks, row.n_items, row.n_unparseable,
                             *[row.cells[c].value if c in row.cells else "" for c in columns]])


def render_png(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.score is not None][::-1]
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.45 * max(1, len(shown))))
    labels = [f"{row.dataset} ({_fraction(row)}) / {row.model}" for row in shown]
    scores = [row.score for row in shown]
    errors = [[row.score - row.score_ci[0] if row.score_ci else 0 for row in shown],
              [row.score_ci[1] - row.score if row.score_ci else 0 for row in shown]]
    axes.barh(range(len(shown)), scores, xerr=errors, color="#4c72b0", capsize=3)
    axes.set_yticks(range(len(shown)), labels)
    axes.set_xlim(0, 1)
    axes.set_xlabel("dataset score (mean held-out F1 / detection rate), 95% CI")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, index) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var ascending = th.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('th').forEach(function (other) { other.removeAttribute('data-order'); });
    th.setAttribute('data-order', ascending ? 'asc' : 'desc');
    var numeric = th.getAttribute('data-type') === 'number';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].getAttribute('data-value'), y = b.cells[index].getAttribute('data-value');
      if (numeric) {
        x = x === '' ? -Infinity : parseFloat(x); y = y === '' ? -Infinity : parseFloat(y);
        return ascending ? x - y : y - x;
      }
      return ascending ? x.localeCompare(y) : y.localeCompare(x);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def render_html(rows: list[Row], png: Path | None = None) -> str:
    columns = benchmark_columns(rows)
    head = [("Rank", "number"), ("Training dataset", "text"), ("Fraction", "text"), ("Base model", "text"),
            ("Score", "number"), ("95% CI", "text"), ("Weighted", "number"), ("Benchmarks", "number"),
            *[(column, "number") for column in columns]]
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>RMS dataset leaderboard</title>',
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{cursor:pointer;background:#f3f3f3}"
           "td.text{text-align:left}th[data-order=asc]::after{content:' \\25B2'}"
           "th[data-order=desc]::after{content:' \\25BC'}</style></head><body>",
           "<h1>RMS dataset leaderboard</h1>",
           "<p>Click a column header to sort. Score: mean held-out F1 (detection rate on single-class "
           "benchmarks); see docs/eval.md.</p>",
           '<table class="sortable" id="leaderboard"><thead><tr>']
    out += [f'<th data-type="{kind}" data-key="{html.escape(name)}">{html.escape(name)}</th>' for name, kind in head]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(rows, start=1):
        values: list[tuple[str, str, str]] = [
            (str(rank), str(rank), "number"), (row.dataset, row.dataset, "text"),
            (_fraction(row), _fraction(row), "text"), (row.model, row.model, "text"),
            (_fmt(row.score), "" if row.score is None else repr(row.score), "number"),
            (_fmt_ci(row.score_ci).strip(), _fmt_ci(row.score_ci).strip(), "text"),
            (_fmt(row.weighted_score), "" if row.weighted_score is None else repr(row.weighted_score), "number"),
            (str(row.n_benchmarks), str(row.n_benchmarks), "number"),
        ]
        for column in columns:
            cell = row.cells.get(column)
            shown = "—" if cell is None else _fmt(cell.value) + _fmt_ci(cell.ci)
            values.append((shown, "" if cell is None or cell.value is None else repr(cell.value), "number"))
        out.append('<tr data-run="' + html.escape(row.run_id) + '">' + "".join(
            f'<td class="{kind}" data-value="{html.escape(sort_value)}">{html.escape(shown)}</td>'
            for shown, sort_value, kind in values) + "</tr>")
    out.append("</tbody></table>")
    if png is not None and png.is_file():
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        out.append(f'<p><img alt="dataset scores" src="data:image/png;base64,{encoded}"></p>')
    out.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


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
    rows = load_rows(results_dir)
    prefix = os.path.relpath(results_dir, out_dir) + "/" if out_dir.resolve() != results_dir.resolve() else ""
    paths = {kind: out_dir / f"leaderboard.{kind}" for kind in ("md", "csv", "json", "png", "html")}
    paths["md"].write_text("# RMS dataset leaderboard\n\n" + render_markdown(rows, prefix), encoding="utf-8")
    write_csv(rows, paths["csv"])
    paths["json"].write_text(json.dumps([asdict(row) for row in rows], indent=2), encoding="utf-8")
    render_png(rows, paths["png"])
    paths["html"].write_text(render_html(rows, paths["png"]), encoding="utf-8")
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="results directory of eval.grid (its cells/ folder is read)")
    parser.add_argument("--out", help="where to write leaderboard.{md,csv,json,png,html} (default: RESULTS_DIR)")
    parser.add_argument("--insert-into", metavar="FILE",
                        help=f"also put the markdown table between {START_MARKER} and {END_MARKER} in FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = write_leaderboard(args.results_dir, args.out)
        if args.insert_into:
            target = Path(args.insert_into)
            prefix = os.path.relpath(Path(args.results_dir), target.parent) + "/"
            insert_between_markers(target, render_markdown(load_rows(args.results_dir), prefix))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
