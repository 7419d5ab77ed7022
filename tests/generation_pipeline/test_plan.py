"""`python -m generation plan`: the photos merge would drop as duplicates of another shard's, found before
their model calls. Shard jobs given the plan skip them at ingest; the merged release is the one without a
plan, for fewer model calls."""

from __future__ import annotations

import json

import pytest

from generation.__main__ import main
from generation.plan import Plan, make_plan
from generation.release.merge import merge
from generation.run import run
from tests.generation_pipeline.conftest import shared_photos, write_folder
from tests.generation_pipeline.test_resume_and_shards import release_content
from tests.generation_pipeline.test_scale_pipeline import _near_copy_in_the_other_shard


@pytest.fixture
def config_with_a_cross_shard_copy(make_config, tmp_path):
    photos = shared_photos(6)
    descriptions = ["a cliff edge at sunset", "a kitchen stove", "a quiet pool", "a stove in a small flat",
                    "a cliff path in the hills", "an indoor pool with a slide"]
    entries = [(p.name, p.read_bytes(), d) for p, d in zip(photos, descriptions)]
    entries.append(("copy.jpg", _near_copy_in_the_other_shard(photos[0]), "a cliff edge at dawn"))
    return make_config(write_folder(tmp_path / "photos", entries))


def _sharded(config, root, plan=None) -> tuple[dict, int]:
    shards = [str(root / f"shard-{i}") for i in range(2)]
    calls = sum(run(config, out, shard=(i, 2), show_progress=False, plan=plan)["usage"]["model_calls"]
                for i, out in enumerate(shards))
    return merge(shards, str(root / "release")), calls


def test_a_planned_run_skips_the_cross_shard_copy_before_its_model_calls_and_releases_the_same(
        config_with_a_cross_shard_copy, tmp_path):
    config = config_with_a_cross_shard_copy
    plan = make_plan(config, 2)
    [(dropped_shard, dropped)] = plan.drop.items()
    assert len(dropped) == 1  # the copy or its original: whichever merge would drop
    unplanned, unplanned_calls = _sharded(config, tmp_path / "unplanned")
    planned, planned_calls = _sharded(config, tmp_path / "planned", plan)
    planned_rows, unplanned_rows = (release_content(tmp_path / run / "release") for run in ("planned", "unplanned"))
    assert planned_rows.pop("rejects") != unplanned_rows.pop("rejects")  # the copy's reject says who found it
    assert planned_rows == unplanned_rows and planned["pairs"] == unplanned["pairs"]
    assert planned_calls < unplanned_calls  # the dropped photo's calls were never made
    rejects = (tmp_path / "planned" / "release" / "rejects.jsonl").read_text()
    assert "found by the plan" in rejects and "found when merging" not in rejects  # merge checked, found nothing more
    dropped_reject = [json.loads(line) for line in rejects.splitlines() if "found by the plan" in line]
    assert [r["image_id"] for r in dropped_reject] == list(dropped)


def test_a_plan_for_another_split_or_config_is_refused_in_one_line(config_with_a_cross_shard_copy, make_config,
                                                                  tmp_path):
    from typed_config import ConfigError

    config = config_with_a_cross_shard_copy
    plan = make_plan(config, 2)
    with pytest.raises(ConfigError, match="made for 2 shards, this run is shard 0/3"):
        run(config, tmp_path / "a", shard=(0, 3), show_progress=False, plan=plan)
    other = make_config(config.input.path, ingest={"near_duplicate_distance": 0})
    with pytest.raises(ConfigError, match="make the plan again with this config"):
        run(other, tmp_path / "b", shard=(0, 2), show_progress=False, plan=plan)


def test_the_plan_command_writes_a_plan_the_run_command_reads(config_with_a_cross_shard_copy, tmp_path, capsys):
    import yaml

    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config_with_a_cross_shard_copy.to_dict()))
    assert main(["plan", str(config_file), "--shards", "2", "--out", str(tmp_path / "plan.json")]) == 0
    assert "1 photo(s) near-duplicate a photo of another shard" in capsys.readouterr().out
    assert Plan.read(tmp_path / "plan.json") == make_plan(config_with_a_cross_shard_copy, 2)
    assert main(["run", str(config_file), "--shard", "0/2", "--plan", str(tmp_path / "plan.json"),
                 "--out", str(tmp_path / "s0"), "--no-progress"]) == 0
