"""Self-adaptive taxonomy: free-form risk labels from the generator, merged into categories.

Labels are normalised to lower-case snake_case; for comparison filler words such as "risk"/"hazard" are
dropped and a plural "s" is stripped. Labels are then clustered: two labels join when their token sets overlap (Jaccard >= `token_overlap`) or
their strings are close (difflib ratio >= `string_similarity`). A category is named after its most frequent
alias. Lookups go through an index over label tokens and character bigrams (`AliasIndex`) that finds
exactly the aliases a scan over all of them would (near-linear, not quadratic). Building is order-independent (labels are processed by count, then name), so the taxonomy of a
merged sharded run equals that of an unsharded run. No model call and no new dependency.
"""

from __future__ import annotations

import difflib
import math
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
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
    """Whether two comparison keys (`match_key`) name the same risk."""
    if a == b:
        return True
    ta, tb = set(a.split("_")), set(b.split("_"))
    if len(ta & tb) / len(ta | tb) >= token_overlap:
        return True
    if 2 * min(len(a), len(b)) / (len(a) + len(b)) < string_similarity:  # real_quick_ratio(): a bound on ratio()
        return False
    matcher = difflib.SequenceMatcher(None, a, b)
    return matcher.quick_ratio() >= string_similarity and matcher.ratio() >= string_similarity


def _bigrams(key: str) -> list[str]:
    """The key's character bigrams, each occurrence numbered ("ab#0", "ab#1"): a multiset as a set."""
    seen: Counter = Counter()
    grams = []
    for i in range(len(key) - 1):
        gram = key[i : i + 2]
        grams.append(f"{gram}#{seen[gram]}")
        seen[gram] += 1
    return grams


class AliasIndex:
    """Finds every alias that can be `_similar` to a key without comparing it with all of them.

    * Token Jaccard >= t > 0 needs a shared token: an inverted index over tokens.
    * difflib's ratio 2M/T >= s (M characters in k matching blocks, T the two lengths) needs the keys to
      share at least M - k character bigrams; blocks are separated by an unmatched character of either key,
      so k <= T - 2M + 1 and they share >= 3M - T - 1 >= (1.5 s - 1) T - 1 bigrams, and a length ratio
      2 min / T >= s bounds T >= 2 n / (2 - s) for a key of length n. So a key of n characters shares at
      least alpha(n) = ceil((1.5 s - 1) * 2n / (2 - s) - 1) bigrams with any key it is similar to; prefix
      filtering over bigrams in a fixed order (the rarest shared one lies in both prefixes) finds them all.
      Keys with alpha <= 0 (two characters or fewer at s = 0.85), and every key when s <= 2/3 (no bound),
      are compared with everything.
    Candidates are then checked with `_similar` itself, so the decisions are exactly those of the scan."""

    def __init__(self, token_overlap: float, string_similarity: float):
        self.token_overlap, self.string_similarity = token_overlap, string_similarity
        self.keys: list[str] = []
        self.tokens: dict[str, list[int]] = defaultdict(list)
        self.grams: dict[str, list[int]] = defaultdict(list)
        self.unbounded: list[int] = []  # keys a bigram prefix cannot vouch for: candidates of every lookup

    def _alpha(self, key: str) -> int:
        s = self.string_similarity
        if s <= 2 / 3:
            return 0
        return math.ceil((1.5 * s - 1) * 2 * len(key) / (2 - s) - 1 - 1e-9)

    def _prefix(self, key: str) -> list[str] | None:
        """The bigrams a key is indexed and looked up under (None: it must meet every key)."""
        alpha = self._alpha(key)
        if alpha <= 0:
            return None
        grams = sorted(_bigrams(key), key=lambda gram: (zlib.crc32(gram.encode()), gram))
        return grams[: max(0, len(grams) - alpha + 1)]

    def add(self, key: str) -> int:
        position = len(self.keys)
        self.keys.append(key)
        for token in set(key.split("_")):
            self.tokens[token].append(position)
        prefix = self._prefix(key)
        if prefix is None:
            self.unbounded.append(position)
        else:
            for gram in prefix:
                self.grams[gram].append(position)
        return position

    def candidates(self, key: str) -> Iterable[int]:
        """Positions of the indexed keys that may be `_similar` to `key` (every one that is, and others)."""
        if self.token_overlap <= 0:
            return range(len(self.keys))
        prefix = self._prefix(key)
        if prefix is None:
            return range(len(self.keys))
        found = set(self.unbounded)
        for token in set(key.split("_")):
            found.update(self.tokens.get(token, ()))
        for gram in prefix:
            found.update(self.grams.get(gram, ()))
        return found

    def first_similar(self, key: str, rank: list[int]) -> int | None:
        """The lowest `rank[position]` among the indexed keys `_similar` to `key` (None if there is none):
        candidates are checked in rank order, so the search stops at the first one that is."""
        for position in sorted(self.candidates(key), key=lambda p: (rank[p], p)):
            if _similar(key, self.keys[position], self.token_overlap, self.string_similarity):
                return rank[position]
        return None


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
    _index: AliasIndex | None = field(default=None, init=False, repr=False, compare=False)
    _owner: list[int] = field(default_factory=list, init=False, repr=False, compare=False)  # index position -> category
    _filed: dict[tuple[str, int], int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _first: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)  # alias -> first category

    @classmethod
    def build(cls, labels, token_overlap: float = 0.5, string_similarity: float = 0.85) -> "Taxonomy":
        counts = Counter(normalise_label(label) for label in labels)
        taxonomy = cls([], token_overlap, string_similarity)
        for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            taxonomy._file(label, count)
        for category in taxonomy.categories:
            category.name = sorted(category.aliases.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))[0][0]
        return taxonomy

    def _ensure_index(self) -> AliasIndex:
        """The alias index (built on first use from the categories given to the constructor)."""
        if self._index is None:
            self._index, self._owner, self._filed, self._first = AliasIndex(self.token_overlap, self.string_similarity), [], {}, {}
            for number, category in enumerate(self.categories):
                for alias in category.aliases:
                    self._index_alias(alias, number)
        return self._index

    def _index_alias(self, alias: str, category: int) -> None:
        self._filed[(alias, category)] = self._index.add(match_key(alias))
        self._owner.append(category)
        self._first[alias] = min(category, self._first.get(alias, category))

    def _nearest_number(self, normalised: str) -> int | None:
        """The first category (in creation order) with an alias `_similar` to the label, if any."""
        return self._ensure_index().first_similar(match_key(normalised), self._owner)

    def _file(self, normalised: str, count: int) -> Category:
        number = self._nearest_number(normalised)
        if number is None:
            number = len(self.categories)
            self.categories.append(Category(normalised))
        category = self.categories[number]
        if (normalised, number) not in self._filed:
            self._index_alias(normalised, number)
        category.aliases[normalised] += count
        return category

    def add(self, label: str) -> str:
        """Online use (the sampler): file one more label, return its category's name."""
        return self._file(normalise_label(label), 1).name

    def canonical(self, label: str) -> str:
        normalised = normalise_label(label)
        self._ensure_index()
        number = self._first.get(normalised)
        if number is None:
            number = self._nearest_number(normalised)
        return normalised if number is None else self.categories[number].name

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
