"""The leaderboard from fixture result files: ordering, CIs, links, every output format, and the HTML page
sorted by clicking a header in headless chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from eval.leaderboard import END_MARKER, START_MARKER, load_rows, main, write_leaderboard
from eval.score import RESULT_SCHEMA_VERSION, ResultSchemaError, write_result


def cell(run_id, dataset, fraction, benchmark, metric, value, ci, n):
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "judge": {"id": f"hf-{run_id}", "kind": "hf", "base_model": "tiny-llava"},
        "training": {"dataset": dataset, "train_fraction": fraction, "model": "tiny-llava", "run_id": run_id},
        "benchmark": {"name": benchmark, "task": "query", "n_items": n},
        "n_unparseable": 0,
        "primary": {"metric": metric, "value": value, "ci": ci},
        "metrics": {metric: value},
    }


@pytest.fixture
def results_dir(tmp_path):
    """Three judges: 'beta' best on mean, 'alpha' at two fractions (scale experiment)."""
    out = tmp_path / "results"
    cells = [
        cell("alpha-f1", "alpha", 1.0, "salad", "f1", 0.60, [0.50, 0.70], 20),
        cell("alpha-f1", "alpha", 1.0, "siuo", "detection_rate", 0.80, [0.70, 0.90], 100),
        cell("alpha-f0.5", "alpha", 0.5, "salad", "f1", 0.40, [0.30, 0.50], 20),
        cell("alpha-f0.5", "alpha", 0.5, "siuo", "detection_rate", 0.60, [0.50, 0.70], 100),
        cell("beta-f1", "beta", 1.0, "salad", "f1", 0.90, [0.80, 1.00], 20),
        cell("beta-f1", "beta", 1.0, "siuo", "detection_rate", 0.70, [0.60, 0.80], 100),
    ]
    for result in cells:
        write_result(out / "cells" / f"{result['training']['run_id']}__{result['benchmark']['name']}.json", result)
    (out / "judges" / "beta-f1").mkdir(parents=True)
    (out / "judges" / "beta-f1" / "judge_metadata.json").write_text("{}")
    return out


def test_rows_are_sorted_by_mean_score_with_weighted_variant_and_combined_ci(results_dir):
    rows = load_rows(results_dir)
    assert [(row.dataset, row.train_fraction) for row in rows] == [("beta", 1.0), ("alpha", 1.0), ("alpha", 0.5)]
    beta = rows[0]
    assert beta.score == pytest.approx(0.80)
    assert beta.weighted_score == pytest.approx((0.9 * 20 + 0.7 * 100) / 120)
    low, high = beta.score_ci
    assert low < 0.80 < high and high - low < 0.2  # two independent +-0.1 intervals average to a narrower one
    assert beta.judge_metadata == "judges/beta-f1/judge_metadata.json"


def test_every_output_is_written_and_consistent(results_dir):
    paths = write_leaderboard(results_dir)
    markdown = paths["md"].read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[1].startswith("| 1 | beta | 1 | tiny-llava | **0.800** [")
    assert "[0.900](cells/beta-f1__salad.json) [0.800, 1.000]" in table[1]
    assert "(DR)" in table[1] and "[metadata](judges/beta-f1/judge_metadata.json)" in table[1]
    with open(paths["csv"]) as handle:
        records = list(csv.DictReader(handle))
    assert [r["run_id"] for r in records] == ["beta-f1", "alpha-f1", "alpha-f0.5"]
    assert float(records[2]["salad (query)"]) == pytest.approx(0.4)
    assert json.loads(paths["json"].read_text())[0]["cells"]["siuo (query)"]["metric"] == "detection_rate"
    with Image.open(paths["png"]) as image:
        assert image.format == "PNG" and image.width > 100
    page = paths["html"].read_text()
    assert "<script" in page and "data:image/png;base64," in page and "http" not in page.split("<script")[1]


def test_insert_into_replaces_only_the_marked_section(results_dir, tmp_path):
    card = tmp_path / "card" / "README.md"
    card.parent.mkdir()
    card.write_text(f"# Card\n\nIntro.\n\n{START_MARKER}\nold table\n{END_MARKER}\n\nOutro.\n")
    assert main([str(results_dir), "--insert-into", str(card)]) == 0
    text = card.read_text()
    assert "old table" not in text and text.startswith("# Card\n\nIntro.") and text.endswith("Outro.\n")
    assert "[0.900](../results/cells/beta-f1__salad.json)" in text  # links relative to the card
    assert main([str(results_dir), "--insert-into", str(card)]) == 0
    assert card.read_text() == text  # idempotent

    unmarked = tmp_path / "plain.md"
    unmarked.write_text("# No markers\n")
    assert main([str(results_dir), "--insert-into", str(unmarked)]) == 2
    assert unmarked.read_text() == "# No markers\n"


def test_results_of_another_schema_version_stop_the_leaderboard(results_dir):
    stale = json.loads((results_dir / "cells" / "beta-f1__salad.json").read_text())
    stale["schema_version"] = "0"
    (results_dir / "cells" / "beta-f1__salad.json").write_text(json.dumps(stale))
    with pytest.raises(ResultSchemaError, match="beta-f1__salad.json: result schema_version '0'"):
        load_rows(results_dir)


def test_empty_results_dir_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no result files" in capsys.readouterr().err


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("headless chromium is needed for the leaderboard page test (install chromium)")


def _rendered_order(page_path, clicks: list[str]) -> list[str]:
    """Load the page in headless chromium, click the named headers in order, return the rows' run ids."""
    script = "".join(f"document.querySelector('th[data-key=\"{key}\"]').click();" for key in clicks)
    probe = page_path.with_name("probe.html")
    probe.write_text(page_path.read_text().replace("</body>", f"<script>{script}</script></body>"))
    completed = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000",
         "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return re.findall(r'<tr data-run="([^"]+)"', completed.stdout)


@pytest.mark.slow
def test_html_columns_sort_when_their_header_is_clicked(results_dir):
    page = write_leaderboard(results_dir)["html"]
    assert _rendered_order(page, []) == ["beta-f1", "alpha-f1", "alpha-f0.5"]
    assert _rendered_order(page, ["salad (query)"]) == ["alpha-f0.5", "alpha-f1", "beta-f1"]  # ascending
    assert _rendered_order(page, ["siuo (query)", "siuo (query)"]) == ["alpha-f1", "beta-f1", "alpha-f0.5"]
    # text column, stable sort: the two fraction-1 rows keep their score order
    assert _rendered_order(page, ["Fraction"]) == ["alpha-f0.5", "beta-f1", "alpha-f1"]
