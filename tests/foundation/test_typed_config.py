"""Typed configs: one line per bad key, naming the source, the key and what is allowed."""

from typing import Literal

import pytest
from pydantic import PositiveInt

from typed_config import ConfigError, StrictModel, load_yaml, parse_config


class Role(StrictModel):
    backend: Literal["openai", "scripted"]
    concurrency: PositiveInt = 8


class Run(StrictModel):
    generator: Role
    roles: list[Role] = []
    seed: int = 0


def error_of(data) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(Run, data, source="run.yaml")
    return str(caught.value)


def test_a_valid_mapping_becomes_a_typed_immutable_record():
    run = parse_config(Run, {"generator": {"backend": "openai"}}, source="run.yaml")
    assert run.generator.concurrency == 8
    with pytest.raises(Exception):
        run.seed = 3


def test_a_string_where_a_number_belongs_is_named_not_coerced():
    message = error_of({"generator": {"backend": "openai", "concurrency": "8"}})
    assert message.startswith("run.yaml: generator.concurrency:") and "'8'" in message


def test_zero_concurrency_says_what_is_allowed():
    assert "greater than 0" in error_of({"generator": {"backend": "openai", "concurrency": 0}})


def test_a_misspelt_key_lists_the_allowed_keys_of_its_own_block():
    message = error_of({"generator": {"backend": "openai", "concurency": 4}})
    assert message == "run.yaml: generator.concurency: unknown key; allowed keys: backend, concurrency"
    nested = error_of({"generator": {"backend": "openai"}, "roles": [{"backend": "openai", "x": 1}]})
    assert nested == "run.yaml: roles.0.x: unknown key; allowed keys: backend, concurrency"


def test_every_problem_is_one_line():
    message = error_of({"generator": {"backend": "vllm"}, "seed": "1", "extra": True})
    lines = message.splitlines()
    assert len(lines) == 3
    assert any(line.startswith("run.yaml: generator.backend:") and "'vllm'" in line for line in lines)
    assert "run.yaml: extra: unknown key; allowed keys: generator, roles, seed" in lines


def test_a_missing_key_is_named():
    assert error_of({}) == "run.yaml: generator: required key is missing"


def test_load_yaml_names_the_file_and_line_of_a_syntax_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: config is not valid YAML at line \d+"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(latin1)
