"""Check responses: the verifier judges whether each response carries its label (the safe one steers to
safety, the unsafe one ignores the risk); a pair whose responses do not is rejected (stage ``respond``).
Off with ``check_responses: false`` (demos only)."""

from __future__ import annotations

from dataclasses import dataclass

from generation.engine.records import RESPOND, Candidate
from modelcalls.base import ChatResponse
from rms_dataset import SAFE, UNSAFE

from .base import VERIFIER, Dropped, Kept, ModelStep, Photo, TemplateCall, Verdict, parse_verdict_answer, tokens


@dataclass(frozen=True)
class CheckItem:
    photo: Photo
    text: str
    risk: str
    response: str
    label: str  # the label the response should carry


class CheckResponseCall(TemplateCall):
    """item: CheckItem -> Verdict."""

    prompt_name = "check_response"

    def variables(self, item: CheckItem) -> dict:
        return {"text": item.text, "risk": item.risk, "response": item.response}

    def photo(self, item: CheckItem) -> Photo:
        return item.photo

    def parse(self, item: CheckItem, response: ChatResponse) -> Verdict:
        return parse_verdict_answer(response)


class CheckResponses(ModelStep):
    name, stage, role = "check", RESPOND, VERIFIER
    failure = "response check failed"

    def enabled(self, config) -> bool:
        return config.check_responses

    def make_call(self, config, vision, answer_digest):
        return CheckResponseCall(vision=vision, max_tokens=tokens(config, CheckResponseCall), answer_digest=answer_digest)

    def work(self, candidate: Candidate, state):
        photo, risk = state.photo_of(candidate), f"{candidate.risk.category}: {candidate.risk.rationale}"
        return [(f"{candidate.key}:{label}", CheckItem(photo, candidate.text, risk, candidate.responses[label], label))
                for label in (SAFE, UNSAFE)]

    def encode(self, verdict: Verdict):
        return verdict.to_json()

    def accept(self, candidate: Candidate, answers, state):
        wrong = [f"the {label} response was judged {verdict['verdict']} by the verifier: {verdict['reason']}"
                 for label, verdict in zip((SAFE, UNSAFE), answers) if verdict["verdict"] != label]
        return Dropped("; ".join(wrong), "response label wrong") if wrong else Kept((candidate,))
