"""Self-adaptive taxonomy: free-form risk labels from the generator, merged into categories.

Labels are normalised to lower-case snake_case; for comparison filler words such as "risk"/"hazard" are
dropped and a plural "s" is stripped. Labels are then clustered: two labels join when their token sets overlap (Jaccard >= `token_overlap`) or
their strings are close (difflib ratio >= `string_similarity`). A category is named after its most frequent
alias. Building is order-independent (labels are processed by count, then name), so the taxonomy of a
merged sharded run equals that of an unsharded run. No model call and no new dependency.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

FILLER = {"risk", "risks", "hazard", "hazards", "danger", "dangers", "of", "and", "the", "a", "an", "to", "from",
          "potential", "possible", "related", "injury", "injuries"}
UNKNOWN = "other"


def normalise_label(label: str) -> str:
    """Display form: lower-case snake_case ("Fire and burns" -> "fire_and_burns")."""
    return "_".join(re.sub(r"[^a-z0-9]+", " ", label.lower()).split()) or UNKNOWN


def match_key(label: str) -> str:
    """Comparison form: filler words dropped, plural s stripped ("fire_and_burns" -> "fire_burn")."""
    words = re.sub(r"[^a-z0-9]+", " ", label.lower()).split()
    kept = [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words if w not in FILLER]
    return "_".join(kept) or UNKNOWN


def _similar(a: str, b: str, token_overlap: float, string_similarity: float) -> bool:
    a, b = match_key(a), match_key(b)
    if a == b:
        return True
    ta, tb = set(a.split("_")), set(b.split("_"))
    if len(ta & tb) / len(ta | tb) >= token_overlap:
        return True
    return difflib.SequenceMatcher(None, a, b).ratio() >= string_similarity


@dataclass
class Category:
    name: str
    aliases: Counter = field(default_factory=Counter)  # normalised label -> count

    @property
    def count(self) -> int:
        return sum(self.aliases.values())


@dataclass
class Taxonomy:
    categories: list[Category]
    token_overlap: float = 0.5
    string_similarity: float = 0.85

    @classmethod
    def build(cls, labels, token_overlap: float = 0.5, string_similarity: float = 0.85) -> "Taxonomy":
        counts = Counter(normalise_label(label) for label in labels)
        taxonomy = cls([], token_overlap, string_similarity)
        for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            taxonomy._category_for(label).aliases[label] += count
        for category in taxonomy.categories:
            category.name = sorted(category.aliases.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0][0]
        return taxonomy

    def _category_for(self, label: str) -> Category:
        for category in self.categories:
            if any(_similar(label, alias, self.token_overlap, self.string_similarity) for alias in category.aliases):
                return category
        category = Category(label)
        self.categories.append(category)
        return category

    def add(self, label: str) -> str:
        """Online use (the sampler): file one more label, return its category's name."""
        normalised = normalise_label(label)
        category = self._category_for(normalised)
        category.aliases[normalised] += 1
        return category.name

    def canonical(self, label: str) -> str:
        normalised = normalise_label(label)
        for category in self.categories:
            if normalised in category.aliases:
                return category.name
        return self._nearest(normalised)

    def _nearest(self, normalised: str) -> str:
        for category in self.categories:
            if any(_similar(normalised, a, self.token_overlap, self.string_similarity) for a in category.aliases):
                return category.name
        return normalised

    def counts(self) -> dict[str, int]:
        return {category.name: category.count for category in self.categories}

    def to_json(self, pair_counts: dict[str, int] | None = None) -> dict:
        """What `taxonomy.json` holds: categories with their merged aliases and counts (labels proposed and,
        if given, pairs released)."""
        categories = []
        for category in sorted(self.categories, key=lambda c: (-c.count, c.name)):
            categories.append({
                "name": category.name,
                "aliases": dict(sorted(category.aliases.items())),
                "proposed": category.count,
                "pairs": (pair_counts or {}).get(category.name, 0),
            })
        return {"method": f"normalise + token Jaccard >= {self.token_overlap} or difflib ratio >= {self.string_similarity}",
                "categories": categories}
