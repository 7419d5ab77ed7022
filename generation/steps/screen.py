"""Screen: is the photo safe on its own? The generator judges each ingested image; unsafe photos are
rejected (stage ``screen``)."""

from __future__ import annotations

from generation.engine.records import SCREEN, ImageRecord
from modelcalls.base import ChatResponse
from rms_dataset import SAFE

from .base import Dropped, Kept, ModelStep, Photo, TemplateCall, Verdict, parse_verdict_answer, tokens


class ScreenCall(TemplateCall):
    """item: Photo -> Verdict."""

    prompt_name = "screen"

    def variables(self, item: Photo) -> dict:
        return {}

    def photo(self, item: Photo) -> Photo:
        return item

    def parse(self, item: Photo, response: ChatResponse) -> Verdict:
        return parse_verdict_answer(response)


class Screen(ModelStep):
    name = stage = SCREEN
    failure = "screen call failed"

    def make_call(self, config, vision, answer_digest):
        return ScreenCall(vision=vision, max_tokens=tokens(config, ScreenCall), answer_digest=answer_digest)

    def work(self, record: ImageRecord, state):
        return [(record.image_id, state.photo(record))]

    def encode(self, verdict: Verdict):
        return verdict.to_json()

    def accept(self, record: ImageRecord, answers, state):
        (verdict,) = answers
        if verdict["verdict"] != SAFE:
            return Dropped(f"the image alone was judged unsafe: {verdict['reason']}", "image unsafe")
        return Kept((record,))
