"""The leaderboard from result files: it ranks only rows scored on the same benchmarks, counts only cells with
both classes, carries CIs, n, metric kinds, missing images and text-only labels in every format, shows the
sanity judges as reference rows, and the HTML page sorts when a header is clicked in headless chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from eval.judges import make_judge
from eval.leaderboard import END_MARKER, START_MARKER, main, write_leaderboard
from eval.leaderboard_rows import build_sections, load_rows, load_sections
from eval.metrics import compute_metrics
from eval.metrics.dataset_score import ClassCounts, dataset_score
from eval.cell import evaluate
from eval.results import RESULT_SCHEMA_VERSION, ResultSchemaError, write_result
from eval.spec import BenchmarkSpec

U, S = "unsafe", "safe"


def cell(run_id, dataset, fraction, benchmark, gold, predicted, *, missing=0, text_only=False, mode="fast",
         options=None, contract=True, audit="clean"):
    """A result file as eval.score writes it, with metrics computed from (gold, predicted)."""
    single = gold[0] if len(set(gold)) == 1 else None
    metrics = compute_metrics(predicted, gold, single_class=single, n_bootstrap=200, seed=0)
    metric = "detection_rate" if single else "balanced_accuracy"
    result = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "judge": {"id": f"hf-{run_id}", "kind": "hf", "base_model": "tiny-llava"},
        "training": {"dataset": dataset, "train_fraction": fraction, "model": "tiny-llava", "run_id": run_id},
        "benchmark": {"name": benchmark, "task": "query", "n_items": len(gold), "n_missing_images": missing},
        "primary": {"metric": metric, "value": metrics[metric], "ci": metrics["ci"][metric]},
        "metrics": metrics,
    }
    if contract:  # the cell contract fields (OWNERS.md); older cells lack them
        result.update({"n": len(gold), "missing_images": missing, "text_only": text_only, "options": options or {},
                       "mode": mode, "label_mass": 0.9, "format_mismatch": False, "unparseable": 0,
                       "audit": {"verdict": audit, "probes": [], "notes": []}})
    return result


def judged(n_unsafe, n_safe, right_unsafe, right_safe):
    gold = [U] * n_unsafe + [S] * n_safe
    predicted = [U] * right_unsafe + [S] * (n_unsafe - right_unsafe) + [S] * right_safe + [U] * (n_safe - right_safe)
    return gold, predicted


def write(out, result):
    name = f"{result['training']['run_id']}__{result['benchmark']['name']}" + ("-text" if result.get("text_only") else "")
    write_result(out / "cells" / f"{name}.json", result)


@pytest.fixture
def results_dir(tmp_path):
    """'beta' best; 'alpha' at two fractions; 'gamma' scored on one more benchmark (another section); 'alpha'
    also has a detection-only cell; the sanity judges scored by the real eval.score on the same benchmarks."""
    out = tmp_path / "results"
    for run_id, dataset, fraction, salad, mss in [("alpha-f1", "alpha", 1.0, (8, 7), (15, 12)),
                                                  ("alpha-f0.5", "alpha", 0.5, (6, 5), (12, 10)),
                                                  ("beta-f1", "beta", 1.0, (10, 9), (17, 16))]:
        write(out, cell(run_id, dataset, fraction, "salad", *judged(10, 10, *salad), missing=3))
        write(out, cell(run_id, dataset, fraction, "mssbench", *judged(18, 18, *mss)))
    write(out, cell("alpha-f1", "alpha", 1.0, "siuo", [U] * 167, [U] * 167))  # single class: not counted
    write(out, cell("gamma-f1", "gamma", 1.0, "salad", *judged(10, 10, 10, 10)))
    write(out, cell("gamma-f1", "gamma", 1.0, "mssbench", *judged(18, 18, 18, 18)))
    write(out, cell("gamma-f1", "gamma", 1.0, "vlsu", *judged(8, 13, 6, 10), text_only=True))
    for kind in ("constant:unsafe", "random:0", "oracle:0.9:0"):
        for name in ("salad", "mssbench"):
            result = evaluate(make_judge({"kind": kind}), BenchmarkSpec(name=name), out / "predictions", n_bootstrap=200,
                              training={"run_id": kind.replace(":", "-"), "reference": True})
            result["audit"]["verdict"] = "clean"  # as the fixture's judge rows say (the real SaLAD preview is not)
            write_result(out / "cells" / f"{kind.replace(':', '-')}__{name}.json", result)
    (out / "judges" / "beta-f1").mkdir(parents=True)
    (out / "judges" / "beta-f1" / "judge_metadata.json").write_text("{}")
    return out


def test_rows_are_ranked_only_against_rows_scored_on_the_same_benchmarks(results_dir):
    sections = load_sections(results_dir)
    assert [section.benchmarks for section in sections] == [
        ["mssbench (query)", "salad (query)"], ["mssbench (query)", "salad (query)", "vlsu (query) [text-only]"]]
    main_section, gamma_section = sections
    real = [row.run_id for row in main_section.rows if not row.reference]
    assert real == ["beta-f1", "alpha-f1", "alpha-f0.5"]  # gamma is perfect on these two but not ranked here
    assert [row.run_id for row in gamma_section.rows] == ["gamma-f1"]  # the sanity rows lack vlsu: not shown
    beta = main_section.rows[0]
    expected = dataset_score([ClassCounts(key, **beta.cells[key].counts) for key in main_section.benchmarks])
    assert beta.score == pytest.approx(((10 + 9) / 20 + (17 + 16) / 36) / 2) == pytest.approx(expected.value)
    assert beta.score_ci == expected.ci and beta.score_ci[0] < beta.score < beta.score_ci[1]


def test_single_class_cells_are_shown_but_never_in_the_score(results_dir):
    alpha = next(row for row in load_rows(results_dir) if row.run_id == "alpha-f1")
    assert alpha.not_counted == ["siuo (query)"] and alpha.n_benchmarks == 2
    assert alpha.cells["siuo (query)"].value == 1.0  # a detection rate of 1 ...
    assert alpha.score == pytest.approx(((8 + 7) / 20 + (15 + 12) / 36) / 2)  # ... that does not lift the score


def test_sanity_rows_are_reference_rows_at_chance_and_their_ceiling(results_dir):
    main_section = load_sections(results_dir)[0]
    reference = {row.judge: row for row in main_section.rows if row.reference}
    assert set(reference) == {"constant:unsafe", "random:0", "oracle:0.9:0"}
    assert reference["constant:unsafe"].score == 0.5
    assert abs(reference["random:0"].score - 0.5) < 0.15 and reference["oracle:0.9:0"].score > 0.8
    assert all(row.dataset == "reference" for row in reference.values())


def test_a_degenerate_cell_ci_does_not_narrow_the_score_ci(results_dir):
    gamma = next(row for row in load_rows(results_dir) if row.run_id == "gamma-f1")
    perfect = ["mssbench (query)", "salad (query)"]
    assert all(gamma.cells[key].ci == [1.0, 1.0] for key in perfect)  # the cells' percentile bootstrap collapses
    low, high = dataset_score([ClassCounts(key, **gamma.cells[key].counts) for key in perfect]).ci
    assert high == 1.0 and low < 0.97  # 38 right answers do not make a judge certainly perfect
    # before: the combined normal interval of two [1, 1] cells was [1, 1]


def test_every_format_carries_ci_n_metric_kind_missing_images_and_text_only(results_dir):
    paths = write_leaderboard(results_dir)
    markdown = paths["md"].read_text()
    assert "### Ranked on 2 benchmarks: mssbench (query), salad (query)" in markdown
    assert "### Ranked on 3 benchmarks:" in markdown
    beta_line = next(line for line in markdown.splitlines() if line.startswith("| 1 | beta |"))
    assert re.search(r"\*\*0\.\d{3}\*\* \[0\.\d{3}, 0\.\d{3}\] \| 56 \| 2 \|", beta_line)
    assert "[BA 0.950 [" in beta_line and "n=20; DR 1.000, OR 0.100 (3 missing images)](cells/beta-f1__salad.json)" in beta_line
    assert "[metadata](judges/beta-f1/judge_metadata.json)" in beta_line
    assert "DR 1.000 [1.000, 1.000] n=167 (not in score)" in markdown
    assert "(text-only)" in markdown and "| ref | reference | reference | constant:unsafe | **0.500**" in markdown

    with open(paths["csv"]) as handle:
        records = list(csv.DictReader(handle))
    beta = next(r for r in records if r["run_id"] == "beta-f1")
    assert beta["rank"] == "1" and float(beta["score_ci_low"]) < float(beta["score"]) < float(beta["score_ci_high"])
    assert beta["n_items"] == "56" and beta["salad (query) | n"] == "20" and beta["salad (query) | ci_low"]
    assert beta["salad (query) | metric"] == "balanced_accuracy" and beta["salad (query) | missing_images"] == "3"
    assert beta["salad (query) | over_refusal_rate"] == "0.1" and beta["salad (query) | in_score"] == "True"
    gamma = next(r for r in records if r["run_id"] == "gamma-f1")
    assert gamma["vlsu (query) [text-only] | text_only"] == "True" and gamma["section"] == "2"
    alpha = next(r for r in records if r["run_id"] == "alpha-f1")
    assert alpha["siuo (query) | metric"] == "detection_rate" and alpha["siuo (query) | in_score"] == "False"

    data = json.loads(paths["json"].read_text())
    first = data["sections"][0]["rows"][0]
    assert first["run_id"] == "beta-f1" and first["score_ci"] and first["n_items"] == 56
    ranks = [(row["rank"], row["reference"]) for row in data["sections"][0]["rows"]]
    assert [rank for rank, reference in ranks if not reference] == [1, 2, 3]  # numbers, not strings
    assert {rank for rank, reference in ranks if reference} == {None}  # reference rows are not ranked
    assert first["cells"]["salad (query)"]["ci"] and first["cells"]["salad (query)"]["missing_images"] == 3
    with Image.open(paths["png"]) as image:
        assert image.format == "PNG" and image.height > 300  # one panel per ranked section
    page = paths["html"].read_text()
    assert "<script" in page and "data:image/png;base64," in page and "http" not in page.split("<script")[1]
    assert page.count('<table class="sortable"') == 2 and 'class="reference"' in page
    assert "not in score" in page and "text-only" in page and "3 missing images" in page and "n=20" in page
    assert '<span class="kind">DR</span> 1.000' in page and '<span class="kind">BA</span> 0.950' in page
    assert "DR 1.000 · OR 0.100" in page  # a BA cell shows the detection and over-refusal rates it combines
    # the judge column: its id, and its adapter's metadata when the results directory holds it
    assert '<th data-type="text" data-key="Judge">Judge</th>' in page
    assert 'hf-beta-f1<small><a href="judges/beta-f1/judge_metadata.json">judge_metadata.json</a></small>' in page
    assert '<a href="cells/beta-f1__salad.json">result</a>' in page


def test_two_settings_of_one_benchmark_are_two_columns_never_one(tmp_path):
    out = tmp_path / "results"
    for setting, right in (("safe", 9), ("exclude", 5)):
        result = cell("delta-f1", "delta", 1.0, "vlsu", *judged(8, 13, 6, right), options={"borderline": setting})
        write_result(out / "cells" / f"delta-f1__vlsu__{setting}.json", result)
    row = load_rows(out)[0]
    assert sorted(row.cells) == ["vlsu (query) borderline=exclude", "vlsu (query) borderline=safe"]
    assert row.n_benchmarks == 2  # before: both cells were "vlsu (query)" and one overwrote the other


def test_cells_without_the_contract_fields_show_them_as_unknown(tmp_path):
    out = tmp_path / "old"
    write(out, cell("old-f1", "old", 1.0, "salad", *judged(10, 10, 9, 9), contract=False) | {"benchmark": {
        "name": "salad", "task": "query", "n_items": 20}})
    row = load_rows(out)[0]
    assert row.cells["salad (query)"].missing_images is None and row.missing_images is None
    assert "missing images unknown" in write_leaderboard(out)["md"].read_text()


def test_insert_into_replaces_only_the_marked_section(results_dir, tmp_path):
    card = tmp_path / "card" / "README.md"
    card.parent.mkdir()
    card.write_text(f"# Card\n\nIntro.\n\n{START_MARKER}\nold table\n{END_MARKER}\n\nOutro.\n")
    assert main([str(results_dir), "--insert-into", str(card)]) == 0
    text = card.read_text()
    assert "old table" not in text and text.startswith("# Card\n\nIntro.") and text.endswith("Outro.\n")
    assert "](../results/cells/beta-f1__salad.json)" in text  # links relative to the card
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


def test_only_reference_rows_still_form_a_ranked_section(results_dir):
    reference_only = [row for row in load_rows(results_dir) if row.reference]
    sections = build_sections(reference_only)
    assert len(sections) == 1 and len(sections[0].rows) == 3


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("headless chromium is needed for the leaderboard page test (install chromium)")


def _rendered_order(page_path, clicks: list[str], table: str = "section-1") -> list[str]:
    """Load the page in headless chromium, click the named headers of one table, return its rows' run ids."""
    script = "".join(f"document.querySelector('#{table} th[data-key=\"{key}\"]').click();" for key in clicks)
    probe = page_path.with_name("probe.html")
    probe.write_text(page_path.read_text().replace("</body>", f"<script>{script}</script></body>"))
    completed = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--virtual-time-budget=2000", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    body = completed.stdout.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [run for run in re.findall(r'<tr data-run="([^"]+)"', body) if not run.startswith(("constant", "random", "oracle"))]


@pytest.mark.slow
def test_html_columns_sort_when_their_header_is_clicked(results_dir):
    page = write_leaderboard(results_dir)["html"]
    assert _rendered_order(page, []) == ["beta-f1", "alpha-f1", "alpha-f0.5"]
    assert _rendered_order(page, ["salad (query)"]) == ["alpha-f0.5", "alpha-f1", "beta-f1"]  # ascending
    assert _rendered_order(page, ["mssbench (query)", "mssbench (query)"]) == ["beta-f1", "alpha-f1", "alpha-f0.5"]
    assert _rendered_order(page, ["Fraction"]) == ["alpha-f0.5", "beta-f1", "alpha-f1"]  # stable text sort


def test_a_confounded_cell_is_shown_but_never_in_the_score(tmp_path):
    out = tmp_path / "results"
    write(out, cell("a-f1", "a", 1.0, "salad", *judged(10, 10, 9, 9)))
    write(out, cell("a-f1", "a", 1.0, "mssbench", *judged(18, 18, 18, 18), audit="confounded"))
    [row] = load_rows(out)
    assert row.counted == ["salad (query)"] and row.score == pytest.approx(0.9)
    markdown = write_leaderboard(out)["md"].read_text()
    assert "confounded (surface audit): not in score" in markdown
    assert "mssbench (query): confounded" in markdown and "salad (query): clean" in markdown  # the section's audit line


def test_the_modality_gain_is_full_minus_image_withheld_and_the_twin_stays_out_of_the_score(tmp_path):
    out = tmp_path / "results"
    write(out, cell("a-f1", "a", 1.0, "mssbench", *judged(18, 18, 18, 18)))  # BA 1.0 with the images
    write(out, cell("a-f1", "a", 1.0, "mssbench", *judged(18, 18, 9, 9), text_only=True))  # BA 0.5 without
    [row] = load_rows(out)
    assert row.modality_gain == pytest.approx(0.5) and row.counted == ["mssbench (query)"] and row.score == 1.0
    paths = write_leaderboard(out)
    assert "| Modality gain |" in paths["md"].read_text() and "+0.500" in paths["md"].read_text()
    assert "image withheld: modality gain only" in paths["html"].read_text()


def test_a_keyword_baseline_scored_by_eval_score_is_a_reference_row(tmp_path):
    out = tmp_path / "results"
    write(out, cell("a-f1", "a", 1.0, "salad", *judged(10, 10, 9, 9)))
    judge = make_judge({"kind": "python:eval.judges.rules:harmful_keywords"})
    write_result(out / "cells" / "kw__salad.json", evaluate(judge, BenchmarkSpec(name="salad"), out / "predictions",
                                                           n_bootstrap=0))
    rows = {row.judge: row for row in load_rows(out)}
    assert rows["python:eval.judges.rules:harmful_keywords"].reference


def test_cells_link_their_samples_log(tmp_path):
    out = tmp_path / "results"
    judge = make_judge({"kind": "random:0"})
    path = out / "cells" / "random__salad.json"
    write_result(path, evaluate(judge, BenchmarkSpec(name="salad"), out / "predictions", n_bootstrap=0,
                                samples=path.with_name("random__salad.samples.jsonl")))
    markdown = write_leaderboard(out)["md"].read_text()
    assert "[samples](cells/random__salad.samples.jsonl)" in markdown
    page = (out / "leaderboard.html").read_text()
    assert '<a href="cells/random__salad.samples.jsonl">samples</a>' in page
    assert "cells/random__salad.samples.jsonl" in (out / "leaderboard.csv").read_text()
    assert len((out / "cells" / "random__salad.samples.jsonl").read_text().splitlines()) == 20
