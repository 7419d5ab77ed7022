"""The shipped configs are valid, and a config survives being written and read back (summaries and
merges rely on that)."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from generation.engine.config import REPO_ROOT, OpenAIRole, RunConfig, ScriptedRole, TransformersRole
from modelcalls import make_backend
from typed_config import ConfigError

from .conftest import valid_config


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "generation" / "configs").glob("*.yaml")))
def test_every_shipped_config_parses(name):
    config = RunConfig.from_yaml(REPO_ROOT / "generation" / "configs" / name)
    assert config.generator.model and config.verifier.model


def test_roles_are_typed_per_backend():
    demo = RunConfig.from_yaml(REPO_ROOT / "generation" / "configs" / "sample_smollm2.yaml")
    assert isinstance(demo.generator, TransformersRole) and demo.generator.batch_size == 8
    strong = RunConfig.from_yaml(REPO_ROOT / "generation" / "configs" / "strong_openai.yaml")
    assert isinstance(strong.verifier, OpenAIRole) and strong.verifier.max_concurrency == 64


def test_the_backend_gets_only_the_keys_that_were_given():
    config = RunConfig.from_dict({**valid_config("p"), "generator": {"backend": "openai", "model": "m",
                                                                     "base_url": "http://127.0.0.1:9/v1"}})
    assert config.generator.backend_spec() == {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def test_a_revision_goes_to_the_backend_that_can_pin_it_and_is_refused_elsewhere():
    pinned = RunConfig.from_dict({**valid_config("p"), "generator": {"backend": "transformers", "model": "org/m",
                                                                     "revision": "v1.0"}})
    assert pinned.generator.backend_spec() == {"backend": "transformers", "model": "org/m", "revision": "v1.0"}
    with pytest.raises(ConfigError, match=r"generator: revision: a client cannot pin what an OpenAI-compatible server serves"):
        RunConfig.from_dict({**valid_config("p"), "generator": {"backend": "openai", "model": "m", "revision": "abc123"}})


def test_a_config_round_trips_through_yaml(photo_dir):
    config = RunConfig.from_dict(valid_config(photo_dir))
    again = RunConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())))
    assert again == config


def test_a_config_is_immutable_and_overrides_are_validated(photo_dir):
    config = RunConfig.from_dict(valid_config(photo_dir))
    with pytest.raises(Exception):
        config.max_images = 3
    assert config.with_overrides(max_images=3).max_images == 3


@pytest.mark.parametrize("backend, role", [("openai", OpenAIRole), ("transformers", TransformersRole), ("scripted", ScriptedRole)])
def test_each_role_block_has_exactly_its_backends_keys(backend, role):
    """The typed role and the backend's own key check agree (a key added to a backend must be added here)."""
    with pytest.raises(ValueError) as caught:
        make_backend({"backend": backend, "model": "m", "not_a_key": 1})
    allowed = set(ast.literal_eval(re.search(r"allowed keys are (\[.*?\])", str(caught.value)).group(1)))
    assert set(role.model_fields) - {"backend"} == allowed
