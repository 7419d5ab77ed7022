"""Risks: the hidden risks a scene affords (free-form labels), steered by the coverage sampler.

Runs in rounds of ``risk_chunk`` images: the sampler's counts update between rounds, and each round's
prompt says which categories to prefer (rare so far) and to avoid (at ``category_cap``). Of the
``proposals_per_image`` risks proposed, the sampler keeps ``risks_per_image``: each becomes a Candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.engine.records import RISKS, Candidate, ImageRecord, Risk
from modelcalls.base import ChatResponse
from modelcalls.call import ParseError
from modelcalls.json_parse import parse_json

from .base import Dropped, Kept, ModelStep, Photo, TemplateCall, tokens
from .gates import GateError
from .sampler import CoverageSampler


@dataclass(frozen=True)
class RiskItem:
    photo: Photo
    scene: str
    count: int
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()


MAX_LABEL_WORDS = 5  # a category is a short label (fire_and_burns, fall from height), never a sentence
_RISK_LINE = re.compile(r"^\s*(?:[-*\d.)]+\s*)?([A-Za-z][\w /-]{1,40}?)\s*[:|-]\s*(.{10,})$")


class RiskCall(TemplateCall):
    """item: RiskItem -> list[Risk]. Each risk's rationale and intention pass the gates (a risk whose text is
    junk or an echo of the prompt is dropped; none left is a ParseError)."""

    prompt_name = "risks"

    def variables(self, item: RiskItem) -> dict:
        return {"scene": item.scene, "count": item.count, "prefer": list(item.prefer), "avoid": list(item.avoid)}

    def photo(self, item: RiskItem) -> Photo:
        return item.photo

    def parse(self, item: RiskItem, response: ChatResponse) -> list[Risk]:
        try:
            data = parse_json(response.text)
        except ParseError:
            risks = self._parse_lines(response.text)
        else:
            risks = self._parse_json(data)
        gated, last_error = [], None
        for risk in risks:
            try:
                if len(risk.category.split()) > MAX_LABEL_WORDS:
                    raise GateError("length", f"the risk category is a sentence, not a label: {risk.category[:60]!r}")
                self.gated(f"{risk.intention} {risk.rationale}".strip(), item, "risk")
            except ParseError as error:
                last_error = error
                continue
            gated.append(risk)
        if not gated:
            raise last_error or ParseError("the answer names no risk")
        return gated[: item.count]

    @staticmethod
    def _parse_json(data) -> list[Risk]:
        entries = data.get("risks") if isinstance(data, dict) else data
        if isinstance(data, dict) and entries is None and "category" in data:
            entries = [data]
        if not isinstance(entries, list):
            raise ParseError("expected {'risks': [...]} in the answer")
        risks = []
        for entry in entries:
            if not isinstance(entry, dict) or not str(entry.get("category", "")).strip():
                continue
            category = str(entry["category"]).strip()
            risks.append(Risk(category, str(entry.get("subcategory", "")).strip() or category,
                              str(entry.get("rationale", "")).strip(), str(entry.get("intention", "")).strip()))
        if not risks:
            raise ParseError("the answer names no risk with a category")
        return risks

    @staticmethod
    def _parse_lines(text: str) -> list[Risk]:
        """Small models often answer `- fire: lighting a candle near curtains` lines instead of JSON."""
        risks = []
        for line in text.splitlines():
            match = _RISK_LINE.match(line)
            if match:
                label, rationale = match.group(1).strip(), match.group(2).strip()
                risks.append(Risk(label, label, rationale, ""))
        if not risks:
            raise ParseError(f"no risk in the answer {text.strip()[:80]!r}")
        return risks


class Risks(ModelStep):
    name = stage = RISKS
    failure = "risk discovery failed"

    def setup(self, config) -> None:
        self.sampler = CoverageSampler(seed=config.seed, cap=config.category_cap)
        self.keep = config.risks_per_image
        self.count = config.proposals_per_image

    def params(self, config):
        return {"proposals_per_image": config.proposals_per_image, "risks_per_image": config.risks_per_image,
                "category_cap": config.category_cap, "risk_chunk": config.risk_chunk, "seed": config.seed,
                "gates": config.gates.fingerprint()}

    def make_call(self, config, vision, answer_digest):
        return RiskCall(vision=vision, max_tokens=tokens(config, RiskCall), gate_config=config.gates,
                        answer_digest=answer_digest)

    def chunk_size(self, config):
        return config.risk_chunk

    def work_for(self, records: list[ImageRecord], state):
        prefer, avoid = self.sampler.steering()  # one steering per round
        return [[(r.image_id, RiskItem(state.photo(r), state.scenes[r.image_id], self.count, prefer, avoid))]
                for r in records]

    def encode(self, risks: list[Risk]):
        return [vars(risk) for risk in risks]

    def accept(self, record: ImageRecord, answers, state):
        (proposed,) = answers
        chosen = self.sampler.choose(record.image_id, [Risk(**r) for r in proposed], self.keep)
        if not chosen:
            return Dropped(f"every proposed risk is in a category at its cap ({self.sampler.cap})", "category at cap")
        return Kept(tuple(Candidate(f"{record.image_id}:{index}", record.image_id, risk) for index, risk in chosen))
