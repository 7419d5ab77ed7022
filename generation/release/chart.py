"""The taxonomy distribution as a PNG bar chart (matplotlib, Agg backend), written into the release."""

from __future__ import annotations

import io


def taxonomy_chart(counts: dict[str, int], title: str = "RMS pairs per risk category") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    figure, axis = plt.subplots(figsize=(8, 0.4 * max(len(items), 3) + 1.2), dpi=100)
    if items:
        names, values = zip(*items)
        axis.barh(range(len(items)), values, color="#3b7dd8")
        axis.set_yticks(range(len(items)), names)
        axis.invert_yaxis()
        for y, value in enumerate(values):
            axis.text(value, y, f" {value}", va="center")
    else:
        axis.text(0.5, 0.5, "no pairs in this release", ha="center", va="center", transform=axis.transAxes)
        axis.set_yticks([])
    axis.set_xlabel("pairs")
    axis.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
