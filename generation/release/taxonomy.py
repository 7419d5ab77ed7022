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


def _tokens_overlap(ta: frozenset, tb: frozenset, token_overlap: float) -> bool:
    """Two keys' token sets overlap enough (equal keys always do)."""
    return len(ta & tb) / len(ta | tb) >= token_overlap


def _strings_close(a: str, b: str, string_similarity: float) -> bool:
    """difflib's ratio of two keys reaches `string_similarity` (its two quick ratios, upper bounds of the
    ratio, are checked first: they refuse most pairs at a fraction of the cost)."""
    if 2 * min(len(a), len(b)) / (len(a) + len(b)) < string_similarity:  # real_quick_ratio()
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
    """Finds the first indexed key (by a rank) that names the same risk as a key: their token sets overlap
    (Jaccard >= `token_overlap`) or their strings are close (difflib ratio >= `string_similarity`), without
    comparing it with every key.

    * Token Jaccard >= t > 0 needs a shared token: an inverted index over tokens.
    * difflib's ratio 2M/T >= s (M characters in k matching blocks, T the two lengths) needs the keys to
      share at least M - k character bigrams; blocks are separated by an unmatched character of either key,
      so k <= T - 2M + 1 and they share >= 3M - T - 1 >= (1.5 s - 1) T - 1 bigrams, and a length ratio
      2 min / T >= s bounds T >= 2 n / (2 - s) for a key of length n. So a key of n characters shares at
      least alpha(n) = ceil((1.5 s - 1) * 2n / (2 - s) - 1) bigrams with any key it is close to; prefix
      filtering over bigrams in one fixed order (the first shared one lies in both prefixes) finds them
      all. The order puts rare bigrams first when their counts are known (`rarity`, from all the labels of a
      build), else it is a hash order. Keys with alpha <= 0 (two characters or fewer at s = 0.85), and every
      key when s <= 2/3 (no bound), are compared with everything.
    Each candidate is then checked exactly (the token test where a token is shared, difflib where the
    bigram prefixes meet), so the answers are those of a scan over all keys."""

    def __init__(self, token_overlap: float, string_similarity: float, rarity: Counter | None = None):
        self.token_overlap, self.string_similarity = token_overlap, string_similarity
        self.rarity = rarity
        self.keys: list[str] = []
        self.token_sets: list[frozenset] = []
        self.gram_sets: list[frozenset] = []
        self.tokens: dict[str, list[int]] = defaultdict(list)
        self.grams: dict[str, list[int]] = defaultdict(list)
        self.unbounded: list[int] = []  # keys a bigram prefix cannot vouch for: difflib candidates of every lookup

    def _alpha(self, key: str) -> int:
        s = self.string_similarity
        if s <= 2 / 3:
            return 0
        return math.ceil((1.5 * s - 1) * 2 * len(key) / (2 - s) - 1 - 1e-9)

    def _order(self, gram: str) -> tuple:
        return (self.rarity[gram], gram) if self.rarity is not None else (zlib.crc32(gram.encode()), gram)

    def _prefix(self, key: str) -> list[str] | None:
        """The bigrams a key is indexed and looked up under (None: it must meet every key)."""
        alpha = self._alpha(key)
        if alpha <= 0:
            return None
        grams = sorted(_bigrams(key), key=self._order)
        return grams[: max(0, len(grams) - alpha + 1)]

    def add(self, key: str) -> int:
        position = len(self.keys)
        self.keys.append(key)
        tokens = frozenset(key.split("_"))
        self.token_sets.append(tokens)
        self.gram_sets.append(frozenset(_bigrams(key)))
        for token in tokens:
            self.tokens[token].append(position)
        prefix = self._prefix(key)
        if prefix is None:
            self.unbounded.append(position)
        else:
            for gram in prefix:
                self.grams[gram].append(position)
        return position

    def first_similar(self, key: str, rank: list[int]) -> int | None:
        """The lowest `rank[position]` among the indexed keys that name the same risk as `key` (None if
        none does): candidates are checked in rank order, so the search stops at the first that does."""
        everything = range(len(self.keys))
        tokens = frozenset(key.split("_"))
        by_token = everything if self.token_overlap <= 0 else \
            {p for token in tokens for p in self.tokens.get(token, ())}
        prefix = self._prefix(key)
        by_gram = everything if prefix is None else \
            set(self.unbounded).union(*(self.grams.get(gram, ()) for gram in prefix))
        grams = frozenset(_bigrams(key))
        for position in sorted(set(by_token) | set(by_gram), key=lambda p: (rank[p], p)):
            if position in by_token and _tokens_overlap(tokens, self.token_sets[position], self.token_overlap):
                return rank[position]
            if position in by_gram and self._may_be_close(key, grams, position) and \
                    _strings_close(key, self.keys[position], self.string_similarity):
                return rank[position]
        return None

    def _may_be_close(self, key: str, grams: frozenset, position: int) -> bool:
        """The bigram count bound above, for this pair: keys sharing fewer than (1.5 s - 1) T - 1 bigrams
        cannot reach the ratio (a set intersection, far cheaper than difflib)."""
        total = len(key) + len(self.keys[position])
        return len(grams & self.gram_sets[position]) >= (1.5 * self.string_similarity - 1) * total - 1 - 1e-9


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
    _found: dict[str, int | None] = field(default_factory=dict, init=False, repr=False, compare=False)  # key -> category,
    # valid until the next alias is indexed (the sampler files the same few labels again and again)

    @classmethod
    def build(cls, labels, token_overlap: float = 0.5, string_similarity: float = 0.85) -> "Taxonomy":
        counts = Counter(normalise_label(label) for label in labels)
        taxonomy = cls([], token_overlap, string_similarity)
        keys = {match_key(label) for label in counts}
        taxonomy._index = AliasIndex(token_overlap, string_similarity, Counter(g for key in keys for g in _bigrams(key)))
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
        self._found.clear()
        self._filed[(alias, category)] = self._index.add(match_key(alias))
        self._owner.append(category)
        self._first[alias] = min(category, self._first.get(alias, category))

    def _nearest_number(self, normalised: str) -> int | None:
        """The first category (in creation order) with an alias naming the same risk as the label, if any."""
        key = match_key(normalised)
        if key not in self._found:
            self._found[key] = self._ensure_index().first_similar(key, self._owner)
        return self._found[key]

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
