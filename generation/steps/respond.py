"""Respond: the guidance (safe) or risk-ignoring (unsafe) response to an accepted pair, one step per label
(the label picks the template). Gated: a response that echoes its instructions, copies the query or the
scene, talks about the task or (unsafe) refuses is asked again, then rejected."""

from __future__ import annotations

from dataclasses import dataclass

from generation.engine.records import RESPOND, Candidate
from modelcalls.base import ChatResponse

from .base import Kept, ModelStep, Photo, TemplateCall, non_empty


@dataclass(frozen=True)
class RespondItem:
    photo: Photo
    scene: str
    text: str
    label: str  # which response to write: safe (guidance) or unsafe (risk-ignoring)


class RespondCall(TemplateCall):
    """item: RespondItem -> str. One instance per label."""

    def __init__(self, label: str, **kwargs):
        self.prompt_name = f"respond_{label}"
        self.label = label
        super().__init__(**kwargs)

    def variables(self, item: RespondItem) -> dict:
        return {"scene": item.scene, "text": item.text}

    def photo(self, item: RespondItem) -> Photo:
        return item.photo

    def copy_sources(self, item: RespondItem) -> dict[str, str]:
        return {"query": item.text, "scene description": item.scene}

    def parse(self, item: RespondItem, response: ChatResponse) -> str:
        return self.gated(non_empty(response.text, "response"), item, f"{self.label}_response")


class Respond(ModelStep):
    stage = RESPOND

    def __init__(self, label: str):
        self.label = label
        self.name = f"respond_{label}"
        self.failure = f"{label} response call failed"

    def params(self, config):
        return {"gates": config.gates.fingerprint()}

    def make_call(self, config, vision, answer_digest):
        return RespondCall(self.label, vision=vision, max_tokens=config.max_tokens.get(self.name),
                           gate_config=config.gates, answer_digest=answer_digest)

    def work(self, candidate: Candidate, state):
        return [(f"{candidate.key}:{self.label}",
                 RespondItem(state.photo_of(candidate), state.scenes[candidate.image_id], candidate.text, self.label))]

    def accept(self, candidate: Candidate, answers, state):
        (candidate.responses[self.label],) = answers
        return Kept((candidate,))


