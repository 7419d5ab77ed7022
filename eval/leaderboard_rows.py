"""Leaderboard rows from a results directory: each result file (cell) read into a `Cell`, a judge's cells
into a `Row` with its dataset score, and rows grouped into `Section`s that share the counted benchmark set
(the only rows ranked against each other). Rendering is in eval.leaderboard_text (md, csv, json),
eval.leaderboard_html and eval.leaderboard_png; the command is eval.leaderboard."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from eval.audit import CONFOUNDED
from eval.judges.sanity import is_sanity_kind
from eval.metrics.dataset_score import ClassCounts, dataset_score
from eval.provenance import counts_for
from eval.results import read_result
from eval.spec import benchmark_label

BALANCED_ACCURACY = "balanced_accuracy"

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
        modality_gain=modality_gain, zero_shot=bool(training.get("zero_shot", True)),
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
