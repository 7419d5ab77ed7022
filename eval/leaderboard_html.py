"""The leaderboard as one self-contained HTML page: columns sortable by clicking their header, each cell
linked to its result JSON and samples.jsonl, each judge to its metadata, the PNG embedded."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from eval.leaderboard_rows import BALANCED_ACCURACY, Cell, Row, Section, section_columns
from eval.leaderboard_text import (KIND_SHORT, NOTES, audit_line, cell_flags, fmt, fmt_ci, fmt_gain, fraction_label,
                                   rank_label, section_ranks, section_title)

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


def _html_cell(cell: Cell | None, row: Row, counted: bool, link_prefix: str) -> str:
    if cell is None:
        return '<td class="number" data-value="">—</td>'
    kind = KIND_SHORT.get(cell.metric, cell.metric)
    parts = [f'<span class="kind">{html.escape(kind)}</span> {fmt(cell.value)}',
             f"<small>{html.escape(fmt_ci(cell.ci).strip() or 'no CI')} n={cell.n}</small>"]
    if cell.metric == BALANCED_ACCURACY:
        parts.append(f"<small>DR {fmt(cell.detection_rate)} · OR {fmt(cell.over_refusal_rate)}</small>")
    parts += [f'<span class="flag">{html.escape(flag)}</span>' for flag in cell_flags(cell, row)]
    links = [_link(link_prefix + cell.path, "result")]
    if cell.samples:
        links.append(_link(link_prefix + cell.samples, "samples"))
    parts.append(f"<small>{' · '.join(links)}</small>")
    value = "" if cell.value is None else repr(cell.value)
    return f'<td class="number{"" if counted else " out"}" data-value="{value}">{"".join(parts)}</td>'


def _link(href: str, text: str) -> str:
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _judge_cell(row: Row, link_prefix: str) -> str:
    """The judge column: its id (or reference kind), and links to its adapter's judge_metadata.json (what it
    was trained on, which base model, which recipe) when the results directory can reach it."""
    parts = [html.escape(row.judge)]
    if row.judge_metadata:
        parts.append(f"<small>{_link(link_prefix + row.judge_metadata, 'judge_metadata.json')}</small>")
    return f'<td class="text" data-value="{html.escape(row.judge)}">{"".join(parts)}</td>'


def render_html(sections: list[Section], png: Path | None = None, link_prefix: str = "") -> str:
    """The page; ``link_prefix`` leads from where the page is written to the results directory."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>RMS dataset leaderboard</title>',
           f"<style>{_STYLE}</style></head><body>", "<h1>RMS dataset leaderboard</h1>",
           f"<p>{html.escape(NOTES)} Click a column header to sort.</p>"]
    for number, section in enumerate(sections, start=1):
        columns = section_columns(section)
        head = [("Rank", "text"), ("Training dataset", "text"), ("Fraction", "text"), ("Base model", "text"),
                ("Score", "number"), ("95% CI", "text"), ("n", "number"), ("Benchmarks", "number"),
                ("Modality gain", "number"), *[(column, "number") for column in columns], ("Judge", "text")]
        out += [f"<h2>{html.escape(section_title(section))}</h2>", f'<p class="audit">{html.escape(audit_line(section))}</p>',
                f'<table class="sortable" id="section-{number}"><thead><tr>']
        out += [f'<th data-type="{kind}" data-key="{html.escape(name)}">{html.escape(name)}</th>' for name, kind in head]
        out.append("</tr></thead><tbody>")
        for rank, row in zip(section_ranks(section), section.rows):
            rank = rank_label(rank, row)
            values = [(rank, rank, "text"), (row.dataset, row.dataset, "text"), (fraction_label(row), fraction_label(row), "text"),
                      (row.model, row.model, "text"),
                      (fmt(row.score), "" if row.score is None else repr(row.score), "number"),
                      (fmt_ci(row.score_ci).strip(), fmt_ci(row.score_ci).strip(), "text"),
                      (str(row.n_items), str(row.n_items), "number"), (str(row.n_benchmarks), str(row.n_benchmarks), "number"),
                      (fmt_gain(row.modality_gain), "" if row.modality_gain is None else repr(row.modality_gain), "number")]
            cells = "".join(f'<td class="{kind}" data-value="{html.escape(sort)}">{html.escape(shown)}</td>'
                            for shown, sort, kind in values)
            cells += "".join(_html_cell(row.cells.get(column), row, column in section.benchmarks, link_prefix)
                             for column in columns)
            cells += _judge_cell(row, link_prefix)
            css = ' class="reference"' if row.reference else ""
            out.append(f'<tr data-run="{html.escape(row.run_id)}"{css}>{cells}</tr>')
        out.append("</tbody></table>")
    if png is not None and png.is_file():
        encoded = base64.b64encode(png.read_bytes()).decode("ascii")
        out.append(f'<p><img alt="dataset scores with 95% CIs" src="data:image/png;base64,{encoded}"></p>')
    out.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
