"""Leaderboard of training datasets from a results directory (cells written by eval.grid or eval.score).

`python -m eval.leaderboard RESULTS_DIR [--out DIR] [--insert-into README.md]`

Writes ``leaderboard.md`` (links to each cell's result JSON and judge metadata), ``leaderboard.csv``,
``leaderboard.json``, ``leaderboard.png`` (matplotlib, Agg) and ``leaderboard.html`` (self-contained page,
columns sortable by clicking their header). ``--insert-into`` replaces the text between
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
import base64
import csv
import html
import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from eval.audit import CONFOUNDED
from eval.spec import benchmark_label
from eval.judges.sanity import is_sanity_kind
from eval.metrics.dataset_score import ClassCounts, dataset_score
from eval.provenance import counts_for
from eval.results import read_result

START_MARKER = "<!-- rms-leaderboard:start -->"
END_MARKER = "<!-- rms-leaderboard:end -->"
BALANCED_ACCURACY = "balanced_accuracy"
KIND_SHORT = {BALANCED_ACCURACY: "BA", "detection_rate": "DR", "f1": "F1", "over_refusal_rate": "OR"}


@dataclass(frozen=True)
class Cell:
    benchmark: str  # column label: "<name> (<task>)" + options, limit, text-only
    metric: str  # the cell's primary metric: balanced_accuracy (counted) or detection_rate (not counted)
    value: float | None
    ci: list[float] | None
    n: int
    n_unparseable: int
    missing_images: int | None  # None: the cell does not say
    text_only: bool | None
    format_mismatch: bool | None
    mode: str | None
    detection_rate: float | None  # unsafe-class recall
    detection_rate_ci: list[float] | None
    over_refusal_rate: float | None  # gold-safe items flagged unsafe
    over_refusal_rate_ci: list[float] | None
    counts: dict[str, int] | None  # tp, fn, tn, fp when both classes are present
    path: str  # the result JSON, relative to the results directory
    audit: str | None = None  # the surface audit's verdict (eval.audit); None: the cell was written before it
    audit_worst: float | None = None  # the best style probe's cross-validated balanced accuracy
    twin_of: str | None = None  # a text-only cell scored to measure another cell's modality gain
    samples: str | None = None  # the per-sample log beside the result JSON, relative to the results directory

    @property
    def counted(self) -> bool:
        """Does this cell enter the dataset score: both classes, not confounded by the surface audit, and not
        the image-withheld twin of a cell scored with images?"""
        return (self.counts is not None and ClassCounts(self.benchmark, **self.counts).both_classes
                and self.audit != CONFOUNDED and self.twin_of is None)


@dataclass
class Row:
    run_id: str
    dataset: str
    model: str
    train_fraction: float | None
    judge: str  # judge id, or the sanity kind for reference rows
    reference: bool
    score: float | None
    score_ci: list[float] | None
    n_benchmarks: int
    n_items: int  # items in the counted cells
    n_unparseable: int
    missing_images: int | None
    modes: list[str]
    judge_metadata: str | None  # path relative to the results directory, when the judge was trained
    cells: dict[str, Cell] = field(default_factory=dict)
    not_counted: list[str] = field(default_factory=list)  # single-class cells, shown but not in the score
    modality_gain: float | None = None  # mean over cells of BA with the image minus BA with it withheld
    zero_shot: bool = True  # an untrained model judge; False: trained elsewhere or no model (api, guard, callable)

    @property
    def counted(self) -> list[str]:
        return sorted(key for key, cell in self.cells.items() if cell.counted)


@dataclass
class Section:
    benchmarks: list[str]  # the counted benchmark set every ranked row of the section shares
    rows: list[Row]  # best first; reference rows re-scored on this set


def _column(result: dict) -> str:
    bench = result["benchmark"]
    options = result.get("options")
    if not isinstance(options, dict):
        options = bench.get("options") or {}
    label = benchmark_label(bench["name"], bench["task"], options, bench.get("split", "test"))
    if bench.get("limit") is not None:
        label += f" limit={bench['limit']}"
    return label + (" [text-only]" if result.get("text_only") else "")


def make_cell(result: dict, path: str) -> Cell:
    metrics = result.get("metrics") or {}
    ci = metrics.get("ci") or {}
    primary = result.get("primary") or {}
    key = _column(result)
    counts = ClassCounts.from_metrics(key, metrics)
    if counts is not None and counts.both_classes:
        metric, value, value_ci = BALANCED_ACCURACY, counts.balanced_accuracy, ci.get(BALANCED_ACCURACY)
    else:
        metric, value, value_ci = primary.get("metric", "?"), primary.get("value"), primary.get("ci")
    bench = result["benchmark"]
    missing = result.get("missing_images", bench.get("n_missing_images"))
    return Cell(
        benchmark=key, metric=metric, value=value, ci=list(value_ci) if value_ci else None,
        n=int(result.get("n", bench.get("n_items", 0))),
        n_unparseable=int(result.get("unparseable") or 0),
        missing_images=None if missing is None else int(missing), text_only=result.get("text_only"),
        format_mismatch=result.get("format_mismatch"), mode=result.get("mode"),
        detection_rate=metrics.get("recall", metrics.get("detection_rate")),
        detection_rate_ci=ci.get("recall", ci.get("detection_rate")),
        over_refusal_rate=metrics.get("over_refusal_rate"), over_refusal_rate_ci=ci.get("over_refusal_rate"),
        counts={"tp": counts.tp, "fn": counts.fn, "tn": counts.tn, "fp": counts.fp} if counts else None,
        path=path, audit=(result.get("audit") or {}).get("verdict"), audit_worst=_worst_probe(result.get("audit")),
        samples=str(Path(path).with_name(result["samples"])) if result.get("samples") else None,
    )


def _worst_probe(audit: dict | None) -> float | None:
    style = [probe["balanced_accuracy"] for probe in (audit or {}).get("probes", []) if probe.get("style")]
    return max(style) if style else None


TEXT_ONLY = " [text-only]"


def pair_twins(cells: dict[str, Cell]) -> tuple[dict[str, Cell], float | None]:
    """Mark each text-only cell whose image-scored cell is also there as its twin (out of the score), and
    return the mean modality gain over those pairs: BA with the image minus BA without (None: no pair)."""
    gains, paired = [], dict(cells)
    for key, cell in cells.items():
        full = cells.get(key.removesuffix(TEXT_ONLY)) if key.endswith(TEXT_ONLY) else None
        if full is None:
            continue
        paired[key] = replace(cell, twin_of=full.benchmark)
        if full.metric == cell.metric == BALANCED_ACCURACY and None not in (full.value, cell.value):
            gains.append(full.value - cell.value)
    return paired, (sum(gains) / len(gains) if gains else None)


def score_row(row: Row, benchmarks: list[str] | None = None) -> Row:
    """``row`` with its dataset score over ``benchmarks`` (default: every counted cell it has)."""
    keys = row.counted if benchmarks is None else benchmarks
    cells = [row.cells[key] for key in keys]
    score = dataset_score([ClassCounts(cell.benchmark, **cell.counts) for cell in cells])
    return replace(row, score=score.value, score_ci=score.ci, n_benchmarks=len(cells),
                   n_items=sum(cell.n for cell in cells))


def dataset_row(run_id: str, results: list[tuple[str, dict]], results_dir: Path) -> Row:
    """Aggregate one judge's cells into a leaderboard row (scored over every cell with both classes)."""
    first = results[0][1]
    training = first.get("training") or {}
    judge = first.get("judge") or {}
    kind = str(judge.get("kind", ""))
    reference = (bool(judge.get("sanity")) or bool(judge.get("reference")) or is_sanity_kind(kind)
                 or bool(training.get("reference")))
    cells = {}
    for path, result in results:
        cell = make_cell(result, path)
        cells[cell.benchmark] = cell
    cells, modality_gain = pair_twins(cells)
    if reference:
        modality_gain = None  # sanity and keyword judges never open an image
    metadata = None
    candidates = [results_dir / "judges" / run_id / "judge_metadata.json"]
    if training.get("judge_dir"):
        candidates.append(Path(training["judge_dir"]) / "judge_metadata.json")
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is not None:
        metadata = os.path.relpath(found, results_dir)
    missing = [cell.missing_images for cell in cells.values()]
    row = Row(
        run_id=run_id,
        dataset=training.get("dataset") or ("reference" if reference else judge.get("id", run_id)),
        model=training.get("model") or (kind if reference else
                                        str(judge.get("base_model") or judge.get("model") or "?")),
        train_fraction=training.get("train_fraction"),
        judge=kind if reference else str(judge.get("id", run_id)), reference=reference,
        score=None, score_ci=None, n_benchmarks=0, n_items=0,
        n_unparseable=sum(cell.n_unparseable for cell in cells.values()),
        missing_images=None if None in missing else sum(missing),
        modes=sorted({cell.mode for cell in cells.values() if cell.mode}),
        judge_metadata=metadata, cells=cells,
        not_counted=sorted(key for key, cell in cells.items() if not cell.counted and cell.twin_of is None),
        modality_gain=modality_gain, zero_shot=training.get("zero_shot", True),
    )
    return score_row(row)


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (row.score is None, -(row.score or 0.0), row.reference, row.dataset, row.run_id))


def build_sections(rows: list[Row]) -> list[Section]:
    """One section per distinct counted benchmark set of the real (non-reference) rows, the set most rows
    share first. Reference rows join every section whose benchmarks they have, re-scored on them. Rows with
    no counted cell at all end up in a last section with an empty set (not ranked)."""
    real = [row for row in rows if not row.reference] or rows
    sets: dict[tuple[str, ...], list[Row]] = {}
    for row in real:
        sets.setdefault(tuple(row.counted), []).append(row)
    order = sorted(sets, key=lambda key: (not key, -len(sets[key]), -len(key), key))
    sections = []
    for benchmarks in order:
        members = list(sets[benchmarks])
        if benchmarks:
            members += [score_row(row, list(benchmarks)) for row in rows
                        if row.reference and row not in real and set(benchmarks) <= set(row.counted)]
        sections.append(Section(list(benchmarks), _sorted(members)))
    return sections


def load_rows(results_dir: Path | str) -> list[Row]:
    """Every cell under ``RESULTS_DIR/cells`` (or RESULTS_DIR itself), grouped per judge, best first."""
    results_dir = Path(results_dir)
    folder = results_dir / "cells" if (results_dir / "cells").is_dir() else results_dir
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no result files (*.json) in {folder}; run python -m eval.grid first")
    groups: dict[str, list[tuple[str, dict]]] = {}
    for file in files:
        result = read_result(file)  # schema_version checked here
        training, benchmark = result.get("training") or {}, result["benchmark"]
        if not counts_for(benchmark["name"], benchmark["task"], training):
            continue  # one of the judge's training sources (eval.score warned): held out, as the grid does
        run_id = training.get("run_id") or result["judge"]["id"]
        groups.setdefault(run_id, []).append((os.path.relpath(file, results_dir), result))
    return _sorted([dataset_row(run_id, results, results_dir) for run_id, results in groups.items()])


def load_sections(results_dir: Path | str) -> list[Section]:
    return build_sections(load_rows(results_dir))


def section_columns(section: Section) -> list[str]:
    """The counted benchmarks, then any other cell a ranked row of the section has (not in its score).
    A reference row's cells outside the section's benchmarks are not shown there."""
    extra = {key for row in section.rows if not row.reference or not section.benchmarks for key in row.cells}
    return section.benchmarks + sorted(extra - set(section.benchmarks))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _gain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _fmt_ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _fraction(row: Row) -> str:
    if row.reference:
        return "reference"
    if row.train_fraction is not None:
        return f"{row.train_fraction:g}"
    return "zero-shot" if row.zero_shot else "n/a"


def section_title(section: Section) -> str:
    if not section.benchmarks:
        return "Not ranked: no benchmark with both classes (detection-only cells)"
    return f"Ranked on {len(section.benchmarks)} benchmark{'s' if len(section.benchmarks) != 1 else ''}: " + \
        ", ".join(section.benchmarks)


def audit_line(section: Section) -> str:
    """What the surface audit (python -m eval.audit) says about each benchmark shown in a section."""
    seen: dict[str, Cell] = {}
    for row in section.rows:
        for key, cell in row.cells.items():
            if key in section_columns(section) and cell.twin_of is None:
                seen.setdefault(key, cell)
    parts = []
    for key, cell in sorted(seen.items()):
        probe = "" if cell.audit_worst is None else f", best style probe {cell.audit_worst:.2f}"
        parts.append(f"{key}: {cell.audit or 'not audited'}{probe}")
    return "Surface audit (python -m eval.audit; confounded at a style probe >= 0.60): " + "; ".join(parts)


def cell_flags(cell: Cell, row: Row) -> list[str]:
    flags = []
    if cell.audit == CONFOUNDED:
        flags.append("confounded (surface audit): not in score")
    elif cell.twin_of is not None:
        flags.append("image withheld: modality gain only")
    elif not cell.counted:
        flags.append("not in score")
    if cell.audit is None and cell.counts is not None:
        flags.append("not audited")
    if cell.text_only:
        flags.append("text-only")
    if cell.missing_images and not row.reference and not cell.text_only:
        # a sanity judge reads no image and a text-only cell none on purpose: nothing is missing for them
        flags.append(f"{cell.missing_images} missing images")
    elif cell.missing_images is None:
        flags.append("missing images unknown")
    if cell.format_mismatch:
        flags.append("format mismatch")
    if cell.n_unparseable:
        flags.append(f"{cell.n_unparseable} unparseable")
    return flags


def cell_text(cell: Cell, row: Row) -> str:
    """``BA 0.812 [0.700, 0.900] n=36; DR 0.900, OR 0.280; flags``: one cell of the md / html tables."""
    text = f"{KIND_SHORT.get(cell.metric, cell.metric)} {_fmt(cell.value)}{_fmt_ci(cell.ci)} n={cell.n}"
    if cell.metric == BALANCED_ACCURACY:
        text += f"; DR {_fmt(cell.detection_rate)}, OR {_fmt(cell.over_refusal_rate)}"
    flags = cell_flags(cell, row)
    return text + (f" ({', '.join(flags)})" if flags else "")


def _ranks(section: Section) -> list[str]:
    ranks, rank = [], 0
    for row in section.rows:
        if row.reference or not section.benchmarks:
            ranks.append("ref" if row.reference else "—")
        else:
            rank += 1
            ranks.append(str(rank))
    return ranks


NOTES = ("Score: mean over the section's benchmarks of each benchmark's balanced accuracy (BA = (DR + 1 - OR) / 2; "
         "DR = unsafe items flagged, OR = over-refusal, safe items flagged); a judge that ignores its input scores "
         "0.5. 95% CI from the class counts (docs/eval.md). n = items scored. Rows are ranked only against rows "
         "scored on the same benchmarks; 'ref' rows are sanity judges (constant, random, oracle) re-scored on the "
         "section's benchmarks, with the keyword baselines (python:eval.judges.rules) a real judge must beat. Cells "
         "marked 'not in score' have one class (a detection rate a constant judge wins); cells marked 'confounded' "
         "are separable by surface style alone (python -m eval.audit) and never count. Modality gain: BA with the "
         "image minus BA with it withheld, averaged over the row's multimodal cells (does the judge use the "
         "image?). — : not scored (a training source of the judge, or not in its grid).")


# --------------------------------------------------------------------------------------------- renderers


def render_markdown(sections: list[Section], link_prefix: str = "") -> str:
    out = []
    for section in sections:
        columns = section_columns(section)
        header = ["Rank", "Training dataset", "Fraction", "Base model", "Score [95% CI]", "n", "Benchmarks",
                  "Modality gain", *columns, "Judge"]
        out += [f"### {section_title(section)}", "", audit_line(section), "",
                "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for rank, row in zip(_ranks(section), section.rows):
            cells = []
            for column in columns:
                cell = row.cells.get(column)
                cells.append("—" if cell is None else f"[{cell_text(cell, row)}]({link_prefix}{cell.path})" + (
                    f" [samples]({link_prefix}{cell.samples})" if cell.samples else ""))
            judge = f"[metadata]({link_prefix}{row.judge_metadata})" if row.judge_metadata else row.judge
            score = f"**{_fmt(row.score)}**{_fmt_ci(row.score_ci)}" if section.benchmarks else "n/a"
            out.append("| " + " | ".join([rank, row.dataset, _fraction(row), row.model, score, str(row.n_items),
                                           str(row.n_benchmarks), _gain(row.modality_gain), *cells, judge]) + " |")
        out.append("")
    return "\n".join(out) + "\n" + NOTES + "\n"


CELL_FIELDS = ("value", "ci_low", "ci_high", "n", "metric", "detection_rate", "over_refusal_rate", "missing_images",
               "text_only", "audit", "in_score")


def write_csv(sections: list[Section], path: Path) -> None:
    """One line per (section, row); per benchmark its value, CI, n, metric kind, DR, OR, missing images,
    text-only and whether it is in the row's score."""
    columns = sorted({key for section in sections for key in section_columns(section)})
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "rank", "reference", "run_id", "dataset", "train_fraction", "model", "judge",
                         "score", "score_ci_low", "score_ci_high", "n_items", "n_benchmarks", "n_unparseable",
                         "missing_images", "modality_gain", *[f"{c} | {f}" for c in columns for f in CELL_FIELDS]])
        for number, section in enumerate(sections, start=1):
            in_section = set(section.benchmarks)
            for rank, row in zip(_ranks(section), section.rows):
                ci = row.score_ci or [None, None]
                values = []
                for column in columns:
                    cell = row.cells.get(column)
                    if cell is None:
                        values += [""] * len(CELL_FIELDS)
                        continue
                    low, high = cell.ci or [None, None]
                    values += [cell.value, low, high, cell.n, cell.metric, cell.detection_rate, cell.over_refusal_rate,
                               cell.missing_images, cell.text_only, cell.audit, column in in_section]
                writer.writerow([number, rank, row.reference, row.run_id, row.dataset, row.train_fraction, row.model,
                                 row.judge, row.score, ci[0], ci[1], row.n_items, row.n_benchmarks, row.n_unparseable,
                                 row.missing_images, row.modality_gain, *values])


def render_json(sections: list[Section]) -> str:
    return json.dumps({"notes": NOTES, "sections": [
        {"title": section_title(section), "benchmarks": section.benchmarks, "audit": audit_line(section),
         "rows": [{"rank": rank, **asdict(row)} for rank, row in zip(_ranks(section), section.rows)]}
        for section in sections]}, indent=2)


def _png_label(row: Row) -> str:
    name = f"reference: {row.judge}" if row.reference else f"{row.dataset} ({_fraction(row)}) / {row.model}"
    return f"{name}  n={row.n_items}"


def render_png(sections: list[Section], path: Path) -> None:
    """One panel per ranked section: each row's score with its 95% CI and n, the per-benchmark balanced
    accuracies as dots, reference rows in grey, chance (0.5) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = [section for section in sections if section.benchmarks] or sections[:1]
    heights = [1.4 + 0.42 * max(1, len(section.rows)) for section in ranked]
    figure, axes = plt.subplots(len(ranked), 1, figsize=(9, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for axis, section in zip(axes[:, 0], ranked):
        shown = section.rows[::-1]
        for y, row in enumerate(shown):
            color = "#9a9a9a" if row.reference else "#4c72b0"
            if row.score is not None:
                low, high = row.score_ci or [row.score, row.score]
                axis.barh(y, row.score, color=color, height=0.6)
                axis.errorbar(row.score, y, xerr=[[row.score - low], [high - row.score]], color="black", capsize=3)
            dots = [row.cells[key].value for key in section.benchmarks if key in row.cells]
            axis.plot(dots, [y] * len(dots), "o", color="#dd8452", markersize=3, zorder=3)
        axis.axvline(0.5, color="#c44e52", linestyle="--", linewidth=1)
        axis.set_yticks(range(len(shown)), [_png_label(row) for row in shown], fontsize=8)
        axis.set_xlim(0, 1)
        title = section_title(section)
        axis.set_title(title if len(title) < 110 else title[:107] + "...", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("dataset score: mean balanced accuracy, 95% CI (dots: per benchmark; dashed: chance)",
                           fontsize=8)
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

_STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1.5em}"
          "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
          "th{cursor:pointer;background:#f3f3f3}td.text{text-align:left}tr.reference td{color:#666;"
          "background:#fafafa;font-style:italic}small{color:#666;display:block}.flag{color:#b35900;display:block;"
          "font-size:85%}.kind{font-weight:bold;color:#555}td.out{background:#f7f3ea}"
          "th[data-order=asc]::after{content:' \\25B2'}th[data-order=desc]::after{content:' \\25BC'}")


def _html_cell(cell: Cell | None, row: Row, counted: bool) -> str:
    if cell is None:
        return '<td class="number" data-value="">—</td>'
    kind = KIND_SHORT.get(cell.metric, cell.metric)
    parts = [f'<span class="kind">{html.escape(kind)}</span> {_fmt(cell.value)}',
             f"<small>{html.escape(_fmt_ci(cell.ci).strip() or 'no CI')} n={cell.n}</small>"]
    if cell.metric == BALANCED_ACCURACY:
        parts.append(f"<small>DR {_fmt(cell.detection_rate)} · OR {_fmt(cell.over_refusal_rate)}</small>")
    parts += [f'<span class="flag">{html.escape(flag)}</span>' for flag in cell_flags(cell, row)]
    value = "" if cell.value is None else repr(cell.value)
    return f'<td class="number{"" if counted else " out"}" data-value="{value}">{"".join(parts)}</td>'


def render_html(sections: list[Section], png: Path | None = None) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>RMS dataset leaderboard</title>',
           f"<style>{_STYLE}</style></head><body>", "<h1>RMS dataset leaderboard</h1>",
           f"<p>{html.escape(NOTES)} Click a column header to sort.</p>"]
    for number, section in enumerate(sections, start=1):
        columns = section_columns(section)
        head = [("Rank", "text"), ("Training dataset", "text"), ("Fraction", "text"), ("Base model", "text"),
                ("Score", "number"), ("95% CI", "text"), ("n", "number"), ("Benchmarks", "number"),
                ("Modality gain", "number"), *[(column, "number") for column in columns]]
        out += [f"<h2>{html.escape(section_title(section))}</h2>", f'<p class="audit">{html.escape(audit_line(section))}</p>',
                f'<table class="sortable" id="section-{number}"><thead><tr>']
        out += [f'<th data-type="{kind}" data-key="{html.escape(name)}">{html.escape(name)}</th>' for name, kind in head]
        out.append("</tr></thead><tbody>")
        for rank, row in zip(_ranks(section), section.rows):
            values = [(rank, rank, "text"), (row.dataset, row.dataset, "text"), (_fraction(row), _fraction(row), "text"),
                      (row.model, row.model, "text"),
                      (_fmt(row.score), "" if row.score is None else repr(row.score), "number"),
                      (_fmt_ci(row.score_ci).strip(), _fmt_ci(row.score_ci).strip(), "text"),
                      (str(row.n_items), str(row.n_items), "number"), (str(row.n_benchmarks), str(row.n_benchmarks), "number"),
                      (_gain(row.modality_gain), "" if row.modality_gain is None else repr(row.modality_gain), "number")]
            cells = "".join(f'<td class="{kind}" data-value="{html.escape(sort)}">{html.escape(shown)}</td>'
                            for shown, sort, kind in values)
            cells += "".join(_html_cell(row.cells.get(column), row, column in section.benchmarks) for column in columns)
            css = ' class="reference"' if row.reference else ""
            out.append(f'<tr data-run="{html.escape(row.run_id)}"{css}>{cells}</tr>')
        out.append("</tbody></table>")
    if png is not None and png.is_file():
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        out.append(f'<p><img alt="dataset scores with 95% CIs" src="data:image/png;base64,{encoded}"></p>')
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
    sections = load_sections(results_dir)
    prefix = os.path.relpath(results_dir, out_dir) + "/" if out_dir.resolve() != results_dir.resolve() else ""
    paths = {kind: out_dir / f"leaderboard.{kind}" for kind in ("md", "csv", "json", "png", "html")}
    paths["md"].write_text("# RMS dataset leaderboard\n\n" + render_markdown(sections, prefix), encoding="utf-8")
    write_csv(sections, paths["csv"])
    paths["json"].write_text(render_json(sections), encoding="utf-8")
    render_png(sections, paths["png"])
    paths["html"].write_text(render_html(sections, paths["png"]), encoding="utf-8")
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

