"""Scene: what the photo shows and what it affords (two or three sentences), gated like every text."""

from __future__ import annotations

from generation.engine.records import SCENE, ImageRecord
from modelcalls.base import ChatResponse

from .base import Kept, ModelStep, Photo, TemplateCall, json_or_text, tokens


class SceneCall(TemplateCall):
    """item: Photo -> str."""

    prompt_name = "scene"

    def variables(self, item: Photo) -> dict:
        return {}

    def photo(self, item: Photo) -> Photo:
        return item

    def parse(self, item: Photo, response: ChatResponse) -> str:
        return self.gated(json_or_text(response, "scene"), item, "scene")


class Scene(ModelStep):
    name = stage = SCENE
    failure = "scene call failed"

    def params(self, config):
        return {"gates": config.gates.fingerprint()}

    def make_call(self, config, vision, answer_digest):
        return SceneCall(vision=vision, max_tokens=tokens(config, SceneCall), gate_config=config.gates,
                         answer_digest=answer_digest)

    def work(self, record: ImageRecord, state):
        return [(record.image_id, state.photo(record))]

    def accept(self, record: ImageRecord, answers, state):
        (scene,) = answers
        state.scenes[record.image_id] = scene
        return Kept((record,))
