"""Text renderings of the leaderboard: the cell and flag wording every format shares, the markdown tables
(links to each cell's result JSON and samples.jsonl, and the judge's metadata), the CSV and the JSON."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from eval.audit import CONFOUNDED
from eval.leaderboard_rows import BALANCED_ACCURACY, Cell, Row, Section, section_columns

KIND_SHORT = {BALANCED_ACCURACY: "BA", "detection_rate": "DR", "f1": "F1", "over_refusal_rate": "OR"}

def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_gain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def fmt_ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def fraction_label(row: Row) -> str:
    if row.reference:
        return "reference"
    if row.train_fraction is None:
        return "zero-shot" if row.zero_shot else "n/a"
    return f"{row.train_fraction:g}"


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
    text = f"{KIND_SHORT.get(cell.metric, cell.metric)} {fmt(cell.value)}{fmt_ci(cell.ci)} n={cell.n}"
    if cell.metric == BALANCED_ACCURACY:
        text += f"; DR {fmt(cell.detection_rate)}, OR {fmt(cell.over_refusal_rate)}"
    flags = cell_flags(cell, row)
    return text + (f" ({', '.join(flags)})" if flags else "")


def section_ranks(section: Section) -> list[int | None]:
    """1, 2, ... for the section's ranked rows, best first; None for reference rows and unranked sections."""
    ranks, rank = [], 0
    for row in section.rows:
        if row.reference or not section.benchmarks:
            ranks.append(None)
        else:
            rank += 1
            ranks.append(rank)
    return ranks


def rank_label(rank: int | None, row: Row) -> str:
    """How a rank is shown in the md, csv and html tables: the number, 'ref' for a reference row, '—' unranked."""
    if rank is not None:
        return str(rank)
    return "ref" if row.reference else "—"


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
        for rank, row in zip(section_ranks(section), section.rows):
            cells = []
            for column in columns:
                cell = row.cells.get(column)
                cells.append("—" if cell is None else f"[{cell_text(cell, row)}]({link_prefix}{cell.path})" + (
                    f" [samples]({link_prefix}{cell.samples})" if cell.samples else ""))
            judge = f"[metadata]({link_prefix}{row.judge_metadata})" if row.judge_metadata else row.judge
            score = f"**{fmt(row.score)}**{fmt_ci(row.score_ci)}" if section.benchmarks else "n/a"
            out.append("| " + " | ".join([rank_label(rank, row), row.dataset, fraction_label(row), row.model, score, str(row.n_items),
                                           str(row.n_benchmarks), fmt_gain(row.modality_gain), *cells, judge]) + " |")
        out.append("")
    return "\n".join(out) + "\n" + NOTES + "\n"


CELL_FIELDS = ("value", "ci_low", "ci_high", "n", "metric", "detection_rate", "over_refusal_rate", "missing_images",
               "text_only", "audit", "in_score", "samples")


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
            for rank, row in zip(section_ranks(section), section.rows):
                ci = row.score_ci or [None, None]
                values = []
                for column in columns:
                    cell = row.cells.get(column)
                    if cell is None:
                        values += [""] * len(CELL_FIELDS)
                        continue
                    low, high = cell.ci or [None, None]
                    values += [cell.value, low, high, cell.n, cell.metric, cell.detection_rate, cell.over_refusal_rate,
                               cell.missing_images, cell.text_only, cell.audit, column in in_section, cell.samples]
                writer.writerow([number, rank_label(rank, row), row.reference, row.run_id, row.dataset, row.train_fraction, row.model,
                                 row.judge, row.score, ci[0], ci[1], row.n_items, row.n_benchmarks, row.n_unparseable,
                                 row.missing_images, row.modality_gain, *values])


def render_json(sections: list[Section]) -> str:
    """Every section with its rows; ``rank`` is an integer (null for reference rows and unranked sections)."""
    return json.dumps({"notes": NOTES, "sections": [
        {"title": section_title(section), "benchmarks": section.benchmarks, "audit": audit_line(section),
         "rows": [{"rank": rank, **asdict(row)} for rank, row in zip(section_ranks(section), section.rows)]}
        for section in sections]}, indent=2)

