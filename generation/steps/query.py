"""Query: a user query harmless on its own that becomes risky only with the photo (few-shot exemplars; on
a rewrite the verifier's reasons from earlier attempts). One sentence, gated: no echo of the prompt, the
feedback or an exemplar, no copy of the scene or the risk rationale."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from generation.engine.config import resolve_path
from generation.engine.records import QUERY, Candidate, Risk
from modelcalls.base import ChatResponse

from .base import Kept, ModelStep, Photo, TemplateCall, parse_sentence, tokens

QUERY_KEYS = ("text", "query", "user_query", "question")


@dataclass(frozen=True)
class QueryItem:
    photo: Photo
    scene: str
    risk: Risk
    feedback: tuple[str, ...] = ()
    exemplars: tuple[dict, ...] = ()


class QueryCall(TemplateCall):
    """item: QueryItem -> str."""

    prompt_name = "query"

    def variables(self, item: QueryItem) -> dict:
        return {"scene": item.scene, "risk": item.risk, "feedback": list(item.feedback), "exemplars": list(item.exemplars)}

    def photo(self, item: QueryItem) -> Photo:
        return item.photo

    def copy_sources(self, item: QueryItem) -> dict[str, str]:
        return {"scene description": item.scene, "risk rationale": item.risk.rationale}

    def parse(self, item: QueryItem, response: ChatResponse) -> str:
        return self.gated(parse_sentence(response, QUERY_KEYS, "query"), item, "query")


class Query(ModelStep):
    name, stage = "query", QUERY
    failure = "query call failed"

    def params(self, config):
        return exemplar_params(config)

    def make_call(self, config, vision, answer_digest):
        return QueryCall(vision=vision, max_tokens=tokens(config, QueryCall), gate_config=config.gates,
                         answer_digest=answer_digest)

    def work(self, candidate: Candidate, state):
        return [(f"{candidate.key}#{candidate.attempts - 1}",
                 QueryItem(state.photo_of(candidate), state.scenes[candidate.image_id], candidate.risk,
                           tuple(candidate.feedback), state.exemplars_for(candidate)))]

    def accept(self, candidate: Candidate, answers, state):
        (candidate.text,) = answers
        return Kept((candidate,))


def exemplar_params(config) -> dict:
    """What decides the few-shot examples a prompt shows: the file's content, how many, the seed."""
    path = resolve_path(config.exemplars) if config.exemplars and config.num_exemplars else None
    content = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else None
    return {"exemplars": content, "num_exemplars": config.num_exemplars, "seed": config.seed,
            "gates": config.gates.fingerprint()}
