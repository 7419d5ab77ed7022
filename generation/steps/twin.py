"""Twin: the query's safe twin, minimally different and genuinely safe with the same photo. Gated like the
query, and it must not be the query again (nor copy an exemplar's query or twin)."""

from __future__ import annotations

from dataclasses import dataclass

from generation.engine.records import QUERY, Candidate, Risk
from modelcalls.base import ChatResponse

from .base import Kept, ModelStep, Photo, TemplateCall, parse_sentence, tokens
from .query import QUERY_KEYS, exemplar_params

TWIN_KEYS = ("safe_twin_text", "safe_twin", "twin", "safe_query")


@dataclass(frozen=True)
class TwinItem:
    photo: Photo
    scene: str
    risk: Risk
    text: str  # the query whose safe twin is wanted
    feedback: tuple[str, ...] = ()
    exemplars: tuple[dict, ...] = ()


class TwinCall(TemplateCall):
    """item: TwinItem -> str."""

    prompt_name = "twin"

    def variables(self, item: TwinItem) -> dict:
        return {"scene": item.scene, "risk": item.risk, "text": item.text, "feedback": list(item.feedback),
                "exemplars": list(item.exemplars)}

    def photo(self, item: TwinItem) -> Photo:
        return item.photo

    def copy_sources(self, item: TwinItem) -> dict[str, str]:
        return {"query": item.text, "scene description": item.scene, "risk rationale": item.risk.rationale}

    def parse(self, item: TwinItem, response: ChatResponse) -> str:
        return self.gated(parse_sentence(response, TWIN_KEYS + QUERY_KEYS, "safe twin"), item, "safe_twin")


class Twin(ModelStep):
    name, stage = "twin", QUERY
    failure = "safe-twin call failed"

    def params(self, config):
        return exemplar_params(config)

    def make_call(self, config, vision, answer_digest):
        return TwinCall(vision=vision, max_tokens=tokens(config, TwinCall), gate_config=config.gates,
                        answer_digest=answer_digest)

    def work(self, candidate: Candidate, state):
        return [(f"{candidate.key}#{candidate.attempts - 1}",
                 TwinItem(state.photo_of(candidate), state.scenes[candidate.image_id], candidate.risk, candidate.text,
                          tuple(candidate.feedback), state.exemplars_for(candidate)))]

    def accept(self, candidate: Candidate, answers, state):
        (candidate.safe_twin_text,) = answers
        return Kept((candidate,))
