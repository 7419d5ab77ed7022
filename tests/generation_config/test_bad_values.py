"""Every bad value in a run config is one line naming the key and what is allowed; `run` exits 2 before
any model is built, and prints no traceback."""

from __future__ import annotations

import pytest

from generation.__main__ import main


def set_key(path: str, value):
    """A change that sets the dotted key `path` (e.g. "ingest.max_side") to `value`."""

    def change(data: dict) -> None:
        *parents, last = path.split(".")
        target = data
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value

    return change


def assert_refused(result, *expected: str) -> str:
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err + result.out
    assert result.out == ""  # nothing ran
    for text in expected:
        assert text in result.err, result.err
    return result.err


@pytest.mark.parametrize("key", ["concurrency", "risk_chunk", "max_images", "ingest.max_side", "max_tokens.query",
                                 "category_cap", "generator.max_concurrency", "proposals_per_image"])
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_counts_are_refused(run_cli, key, value):
    err = assert_refused(run_cli(set_key(key, value)), f"{key}: Input should be greater than 0 (got {value})")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("key", ["concurrency", "max_tokens.query", "dedup_threshold", "seed"])
def test_a_string_where_a_number_belongs_is_not_coerced(run_cli, key):
    assert_refused(run_cli(set_key(key, "8")), f"{key}: Input should be a valid", "(got '8')")


@pytest.mark.parametrize("value", [0, 1.5, -0.2])
def test_dedup_threshold_must_be_a_similarity_in_0_1(run_cli, value):
    err = assert_refused(run_cli(set_key("dedup_threshold", value)), "dedup_threshold: Input should be")
    assert ("greater than 0" in err) == (value <= 0) and ("less than or equal to 1" in err) == (value > 1)


def test_splits_must_sum_to_one(run_cli):
    assert_refused(run_cli(set_key("splits", {"train": 0.8, "test": 0.3})), "splits: the fractions must sum to 1, got 1.1")
    assert_refused(run_cli(set_key("splits", {"train": 1.2, "test": -0.2})), "splits.train: Input should be less than or equal to 1")


def test_a_misspelt_max_tokens_key_lists_the_prompt_names(run_cli):
    assert_refused(run_cli(set_key("max_tokens.qurey", 60)), "max_tokens: unknown prompt name(s) qurey; allowed: ",
                   "query", "respond_safe")


def test_a_misspelt_input_kind_lists_the_kinds(run_cli):
    assert_refused(run_cli(set_key("input.kind", "foldr")), "input: 'kind' must be one of: folder, manifest, dataset")


def test_a_misspelt_top_level_key_lists_the_allowed_keys(run_cli):
    err = assert_refused(run_cli(set_key("max_rewrite", 3)), "max_rewrite: unknown key; allowed keys: ")
    assert "max_rewrites" in err and "concurrency" in err


def test_a_role_key_is_checked_against_its_own_backend(run_cli):
    def openai_with_typo(data):
        data["generator"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "batch_size": 8}

    err = assert_refused(run_cli(openai_with_typo), "generator.batch_size: unknown key; allowed keys: api_key_env, backend, base_url")
    assert "generator.openai" not in err  # the union tag pydantic inserts is not shown
    assert_refused(run_cli(set_key("verifier.backend", "vllm")), "verifier: 'backend' must be one of: openai, transformers, scripted")
    assert_refused(run_cli(set_key("verifier.max_tokens_field", "max_tokens")), "verifier.max_tokens_field: unknown key")


def test_a_scripted_role_needs_its_answers(run_cli):
    def no_answers(data):
        del data["generator"]["respond"]

    assert_refused(run_cli(no_answers), "generator: a scripted role needs exactly one of replies")


def test_more_kept_risks_than_proposals_is_refused(run_cli):
    def change(data):
        data.update(proposals_per_image=2, risks_per_image=3)

    assert_refused(run_cli(change), "risks_per_image (3) cannot exceed proposals_per_image (2)")


def test_max_images_from_the_command_line_is_validated_like_the_file(run_cli):
    assert_refused(run_cli(None, "--max-images", "0"), "--max-images: max_images: Input should be greater than 0")


def test_every_problem_is_reported_at_once(run_cli):
    def three(data):
        data.update(concurrency=0, risk_chunk="2", colour="blue")

    lines = assert_refused(run_cli(three)).strip().splitlines()
    assert len(lines) == 3 and all("run.yaml: " in line for line in lines)


def test_a_header_value_is_never_echoed_in_an_error(run_cli):
    def bad_header(data):
        data["generator"] = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                             "headers": {"api-key": 123456789}}

    err = assert_refused(run_cli(bad_header), "generator.headers.api-key: Input should be a valid string")
    assert "123456789" not in err


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, capsys):
    """Plain YAML keeps the last value of a repeated key and silently drops the first."""
    path = tmp_path / "twice.yaml"
    path.write_text("seed: 1\nname: twice\nseed: 2\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (f"error: {path}: run config is not valid YAML at line 3, column 1: duplicate key "
                                       "'seed' (first given at line 1); keep one of them\n")


def test_a_base_url_without_its_scheme_is_one_line_saying_what_to_write(run_cli):
    def no_scheme(data):
        data["generator"] = {"backend": "openai", "model": "m", "base_url": "127.0.0.1:8000/v1"}

    err = assert_refused(run_cli(no_scheme), "generator.base_url: '127.0.0.1:8000/v1' is not an http:// or https:// URL; "
                                             "write http://127.0.0.1:8000/v1")
    assert err.count("\n") == 1 and "pattern" not in err


@pytest.mark.parametrize("ingest, expected", [({"max_side": 16, "min_side": 32}, "max_side (16) is below min_side (32)"),
                                              ({"max_pixels": 900}, "max_pixels (900) is below min_side² (1024)")])
def test_ingest_limits_that_let_no_photo_through_are_refused(run_cli, ingest, expected):
    """`max_side: 16, min_side: 32` used to be accepted and released 16x11 images."""

    def contradictory(data):
        data["ingest"] = ingest

    assert_refused(run_cli(contradictory), f"ingest: {expected}")
