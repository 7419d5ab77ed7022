"""A transformers role's `revision` pins the Hub commit it loads, and the backend reports the commit it
actually loaded (its `identity`, which enters provenance and checkpoint fingerprints). Tested against the
Hub look-alike on 127.0.0.1 with a tiny random model committed twice."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi
from huggingface_hub import constants as hf_constants

from modelcalls import ChatRequest, make_backend, run_calls_sync
from modelcalls.hf_loading import shared_model
from tests.hub.server import HubServer

from .helpers import EchoCall

TOKEN = "hf_revisionTESTtoken"
REPO = "rms-org/tiny-lm"


def tiny_model_folder(path, seed: int):
    """A 1-layer Llama with SmolLM2's tokenizer and random weights drawn from `seed`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    import local_models

    tokenizer = AutoTokenizer.from_pretrained(local_models.smollm2_path())
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def hub_with_two_commits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    with HubServer(tmp_path / "hub", tokens={TOKEN: "maintainer"}, orgs={"maintainer": ["rms-org"]}) as hub:
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        api = HfApi(endpoint=hub.url, token=TOKEN)
        api.create_repo(REPO)
        first = api.upload_folder(repo_id=REPO, folder_path=tiny_model_folder(tmp_path / "v1", seed=1)).oid
        api.create_tag(REPO, tag="v1", revision=first)
        second = api.upload_folder(repo_id=REPO, folder_path=tiny_model_folder(tmp_path / "v2", seed=2)).oid
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield first, second


def weights_of(backend):
    return backend.hf_model.lm_head.weight.detach().clone()


@pytest.mark.slow
def test_the_revision_pins_the_commit_loaded_and_the_identity_names_it(hub_with_two_commits):
    first, second = hub_with_two_commits
    latest = make_backend({"backend": "transformers", "model": REPO})
    by_tag = make_backend({"backend": "transformers", "model": REPO, "revision": "v1"})
    by_sha = make_backend({"backend": "transformers", "model": REPO, "revision": first})
    assert latest.identity["revision"] == second  # no revision: whatever main is now, and it says which
    assert by_tag.identity["revision"] == by_sha.identity["revision"] == first  # a tag resolves to its commit
    assert not (weights_of(latest) == weights_of(by_tag)).all()
    assert (weights_of(by_tag) == weights_of(by_sha)).all()
    results = run_calls_sync(EchoCall(max_tokens=4), ["hello"], by_sha, cache=None, concurrency=1)
    assert results[0].ok  # the pinned model generates


def test_a_revision_for_a_local_model_is_refused_not_ignored():
    with pytest.raises(ValueError, match=r"revision 'abc123' given for 'smollm2', which is a local model .*pins a Hub id only"):
        make_backend({"backend": "transformers", "model": "smollm2", "revision": "abc123"})


def test_a_local_model_is_identified_by_its_weights():
    backend = make_backend({"backend": "transformers", "model": "smollm2"})
    identity = backend.identity
    assert identity["base_model"] == "smollm2" and len(identity["weights"]) == 16
    assert identity == shared_model("smollm2").fingerprint
