"""Coverage-steering sampler for risk discovery (step 4).

Keeps per-category counts of the risks chosen so far (categories from an online `Taxonomy`). For each new
image it tells the risk prompt which categories to PREFER (the least covered, inverse-frequency) and to
AVOID (those at or above `cap`), and chooses which of the proposed risks to keep: categories at the cap are
dropped, the rest are ordered by inverse-frequency weight (1 / (1 + count)) with a seeded tie-break per image.
Deterministic given the seed and the order in which images are fed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from generation.engine.records import Risk
from generation.release.taxonomy import Taxonomy

SEED_CATEGORIES = ("falls", "fire_and_burns", "drowning", "electrical", "traffic", "sharp_objects",
                   "poisoning", "food_safety", "wildlife", "weather_exposure")


@dataclass
class CoverageSampler:
    seed: int = 0
    cap: int | None = None  # avoid a category once it has this many risks (None: never)
    prefer_count: int = 3
    seed_categories: tuple[str, ...] = SEED_CATEGORIES
    taxonomy: Taxonomy = field(default_factory=lambda: Taxonomy([]))
    counts: Counter = field(default_factory=Counter)

    def steering(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(prefer, avoid) category names for the next prompt."""
        known = {name: self.counts.get(name, 0) for name in self.seed_categories}
        known.update(self.counts)
        open_categories = [name for name in known if self.cap is None or known[name] < self.cap]
        prefer = sorted(open_categories, key=lambda name: (known[name], name))[: self.prefer_count]
        avoid = sorted(name for name, count in known.items() if self.cap is not None and count >= self.cap)
        return tuple(prefer), tuple(avoid)

    def weight(self, category: str) -> float:
        count = self.counts.get(category, 0)
        if self.cap is not None and count >= self.cap:
            return 0.0
        return 1.0 / (1.0 + count)

    def choose(self, image_id: str, risks: list[Risk], keep: int) -> list[tuple[int, Risk]]:
        """Pick up to `keep` of the proposed risks (with their index in the proposal) and count them."""
        rng = random.Random(f"{self.seed}:{image_id}")
        scored = []
        for index, risk in enumerate(risks):
            category = self.taxonomy.canonical(risk.category) if self.taxonomy.categories else risk.category
            scored.append((-self.weight(category), rng.random(), index, risk))
        chosen = [(index, risk) for weight, _, index, risk in sorted(scored) if weight < 0][:keep]
        for _, risk in sorted(chosen, key=lambda pair: pair[0]):
            self.counts[self.taxonomy.add(risk.category)] += 1
        return sorted(chosen, key=lambda pair: pair[0])
