"""The leaderboard as a PNG (matplotlib, Agg): one panel per ranked section."""

from __future__ import annotations

import textwrap
from pathlib import Path

from eval.leaderboard_rows import Row, Section
from eval.leaderboard_text import fraction_label, section_title

X_MAX = 1.04
TITLE_WIDTH = 110  # characters per title line at fontsize 8 in a 9-inch figure

def _png_label(row: Row) -> str:
    name = f"reference: {row.judge}" if row.reference else f"{row.dataset} ({fraction_label(row)}) / {row.model}"
    return f"{name}  n={row.n_items}"


def render_png(sections: list[Section], path: Path) -> None:
    """One panel per ranked section: each row's score with its 95% CI and n, the per-benchmark balanced
    accuracies as dots, reference rows in grey, chance (0.5) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = [section for section in sections if section.benchmarks] or sections[:1]
    # a long benchmark list wraps over several title lines (never cut), each given room above its panel
    titles = [textwrap.fill(section_title(section), TITLE_WIDTH, break_on_hyphens=False) for section in ranked]
    heights = [1.2 + 0.42 * max(1, len(section.rows)) + 0.18 * title.count("\n") for section, title in
               zip(ranked, titles)]
    figure, axes = plt.subplots(len(ranked), 1, figsize=(9, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for axis, section, title in zip(axes[:, 0], ranked, titles):
        shown = section.rows[::-1]
        for y, row in enumerate(shown):
            color = "#9a9a9a" if row.reference else "#4c72b0"
            if row.score is not None:
                low, high = row.score_ci or [row.score, row.score]
                axis.barh(y, row.score, color=color, height=0.6)
                axis.errorbar(row.score, y, xerr=[[row.score - low], [high - row.score]], color="black", capsize=3)
            dots = [row.cells[key].value for key in section.benchmarks if key in row.cells]
            axis.plot(dots, [y] * len(dots), "o", color="#dd8452", markersize=4, zorder=3, clip_on=False)
        axis.axvline(0.5, color="#c44e52", linestyle="--", linewidth=1)
        axis.set_yticks(range(len(shown)), [_png_label(row) for row in shown], fontsize=8)
        axis.set_xlim(0, X_MAX)  # room right of 1.0: a perfect cell's dot is drawn whole
        axis.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        axis.set_ylim(-0.6, len(shown) - 0.4)
        axis.set_title(title, fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("dataset score: mean balanced accuracy, 95% CI (dots: per benchmark; dashed: chance)",
                           fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
