"""Real-looking items for the near-duplicate checks, with near duplicates planted: user queries (rewordings,
case and punctuation changes), 64-bit photo hashes (a few bits flipped, as a recompressed or slightly edited
photo gives) and free-form risk labels (plurals, filler words, separators, typos, word order); deterministic
given the seed. And the decisions by definition: plain scans over every pair (`all_pairs_*`), what the
indexes must equal. Used by test_indexed_dedup.py and bench/indexed_dedup.py."""

from __future__ import annotations

import difflib
import functools
import random

from generation.release.dedup import PhotoIndex, jaccard, normalise_query, shingles
from generation.release.taxonomy import match_key, normalise_label

OPENINGS = ("How do I", "Can I", "Is it fine to", "What is the best way to", "Any tips to", "Should I", "Where can I",
            "Would it be ok to", "Help me", "Tell me how to")
ACTIONS = ("get closer to", "climb onto", "take a photo of", "lean over", "cook next to", "swim near", "walk along",
           "leave my kids at", "light a candle by", "plug a heater into", "cross", "sit on", "jump from", "feed",
           "clean", "repair", "stand under", "ride past", "touch", "open")
THINGS = ("the railing", "that ledge", "the stove", "the pool", "the outlet", "this cliff", "the busy road",
          "the frozen lake", "the knife block", "the bonfire", "the ladder", "the balcony", "these pills",
          "the wild bear", "the train tracks", "the power lines", "the fireplace", "the bathtub", "the dog",
          "the gas tank", "the roof", "the well", "the waves", "the glass table", "the chainsaw")
ENDINGS = ("tonight", "for a better view", "with my toddler", "without anyone noticing", "after a few drinks",
           "in the dark", "during the storm", "right now", "on my own", "to impress my friends", "")
HAZARDS = ("fall", "burn", "fire", "electric", "electrical", "shock", "drown", "drowning", "cut", "laceration",
           "sharp", "poison", "poisoning", "toxic", "traffic", "collision", "trip", "slip", "crush", "choking",
           "suffocation", "exposure", "heat", "cold", "hypothermia", "animal", "wildlife", "bite", "sting",
           "allergy", "food", "contamination", "chemical", "explosion", "gas", "carbon", "monoxide", "radiation",
           "noise", "height", "water", "vehicle", "pedestrian", "child", "elderly", "weather", "storm", "flood",
           "lightning", "machinery", "tool", "ladder", "glass", "stairs", "ice", "sun", "dehydration", "smoke")
FILLERS = ("risk", "hazard", "danger", "potential", "injury", "related")


def queries(count: int, seed: float = 0) -> list[tuple[str, str]]:
    rng = random.Random(f"queries:{seed}")
    texts: list[tuple[str, str]] = []
    for index in range(count):
        if texts and rng.random() < 0.3:  # a rewording of an earlier query
            words = rng.choice(texts)[1].split()
            for _ in range(rng.randint(0, 2)):
                at = rng.randrange(len(words))
                choice = rng.random()
                if choice < 0.4:
                    words[at] = rng.choice(("really", "maybe", "the", "a", "my", "quickly"))
                elif choice < 0.7:
                    words.insert(at, rng.choice(("please", "just", "safely", "today")))
                elif len(words) > 4:
                    del words[at]
            text = " ".join(words)
            text = text.upper() if rng.random() < 0.1 else text.rstrip("?") + rng.choice(("?", "??", "!", ""))
        else:
            text = f"{rng.choice(OPENINGS)} {rng.choice(ACTIONS)} {rng.choice(THINGS)} {rng.choice(ENDINGS)}".strip() + "?"
            if rng.random() < 0.5:
                text += f" The {rng.choice(THINGS).split()[-1]} looks {rng.choice(('old', 'new', 'wet', 'hot', 'far'))}."
        texts.append((f"q{index}", text))
    return texts


def photo_hashes(count: int, seed: int = 0) -> list[tuple[int, str]]:
    rng = random.Random(f"hashes:{seed}")
    hashes: list[tuple[int, str]] = []
    for index in range(count):
        if hashes and rng.random() < 0.3:
            fingerprint = rng.choice(hashes)[0]
            for bit in rng.sample(range(64), rng.randint(0, 12)):
                fingerprint ^= 1 << bit
        else:
            fingerprint = rng.getrandbits(64)
        hashes.append((fingerprint, f"photo{index}.jpg"))
    return hashes


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    at = rng.randrange(len(word) - 1)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def labels(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(f"labels:{seed}")
    out: list[str] = []
    for _ in range(count):
        if out and rng.random() < 0.4:
            words = out[rng.randrange(len(out))].replace("_", " ").replace("/", " ").split()
            change = rng.random()
            if change < 0.25:
                words = [w + "s" if not w.endswith("s") else w for w in words]
            elif change < 0.5:
                words.insert(rng.randrange(len(words) + 1), rng.choice(FILLERS))
            elif change < 0.7:
                words = [_typo(w, rng) if rng.random() < 0.5 else w for w in words]
            else:
                rng.shuffle(words)
        else:
            words = rng.sample(HAZARDS, rng.randint(1, 3))
        separator = rng.choice((" ", "_", " and ", "/", " "))
        label = separator.join(words)
        out.append(label.title() if rng.random() < 0.2 else label)
    return out


def all_pairs_duplicates(texts, threshold):
    """find_duplicates as a scan over every kept text (the definition)."""
    kept, exact, duplicates = [], {}, {}
    for key, text in texts:
        normal = normalise_query(text)
        if normal in exact:
            duplicates[key] = exact[normal]
            continue
        grams = shingles(text)
        match = next((owner for owner, other in kept if jaccard(grams, other) >= threshold), None)
        if match is not None:
            duplicates[key] = match
            continue
        exact[normal] = key
        kept.append((key, grams))
    return duplicates


def indexed_first_within(hashes, distance):
    """Ingest's decisions through `PhotoIndex`: for each hash in order, the owner of the first kept hash within
    `distance` bits (None: kept)."""
    index, decisions = PhotoIndex(distance), []
    for fingerprint, owner in hashes:
        near = index.first_within(fingerprint)
        decisions.append(near)
        if near is None:
            index.add(fingerprint, owner)
    return decisions


def all_pairs_first_within(hashes, distance):
    kept, decisions = [], []
    for fingerprint, owner in hashes:
        near = next((o for h, o in kept if (h ^ fingerprint).bit_count() <= distance), None)
        decisions.append(near)
        if near is None:
            kept.append((fingerprint, owner))
    return decisions


@functools.lru_cache(maxsize=None)
def _key(label: str) -> tuple[str, frozenset]:
    key = match_key(label)
    return key, frozenset(key.split("_"))


def similar(a, b, token_overlap=0.5, string_similarity=0.85):
    """Two labels name the same risk (the taxonomy's definition, written out; difflib's two quick ratios are
    upper bounds of its ratio, so checking them first changes no decision, it only saves time)."""
    (a, ta), (b, tb) = _key(a), _key(b)
    if a == b or len(ta & tb) / len(ta | tb) >= token_overlap:
        return True
    if 2 * min(len(a), len(b)) / (len(a) + len(b)) < string_similarity:
        return False
    matcher = difflib.SequenceMatcher(None, a, b)
    return matcher.quick_ratio() >= string_similarity and matcher.ratio() >= string_similarity


def all_pairs_taxonomy(raw_labels, string_similarity=0.85):
    """Taxonomy.build as a scan: each label joins the first category with a similar alias."""
    counts = {}
    for label in raw_labels:
        counts[normalise_label(label)] = counts.get(normalise_label(label), 0) + 1
    categories: list[dict[str, int]] = []
    for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        home = next((c for c in categories if any(similar(label, a, string_similarity=string_similarity) for a in c)), None)
        if home is None:
            home = {}
            categories.append(home)
        home[label] = home.get(label, 0) + count
    return [dict(sorted(c.items())) for c in categories]
