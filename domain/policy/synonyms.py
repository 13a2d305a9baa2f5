"""Vocabulary normalization for the policy engine: slang, synonyms, typos' targets and filler words.

Contractors do not write the way a handbook is written ("payday", "my buddy signed up", "can I run
it through gpt", "I ghosted a shift"). This module holds the general vocabulary that bridges the two,
and the matcher that applies it to a stemmed token sequence.

The data is plain Python so it ships with the package; an operator can replace or extend it with a
YAML file (see :func:`load_synonyms`)::

    # synonyms.yaml: canonical words (as a handbook writes them) -> phrases contractors use
    ai tools: [chatgpt, gpt, claude, "run it through ... bot"]
    cafe: [coffee shop, starbucks]

Phrases are matched on stems, so inflections match ("signed up" == "sign up"). A ``...`` element
inside a phrase allows up to :data:`GAP_MAX` arbitrary words in between ("friend ... join" matches
"my friend just joined"). Matching a phrase *adds* the canonical words to the query; the original
words are kept.

Keep this list general: add the vocabulary contractors use, never exact evaluation questions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import Stemmer

#: Largest number of words a ``...`` gap in a synonym phrase may skip.
GAP_MAX = 3

#: canonical words (handbook vocabulary) -> phrases contractors use for the same thing, one group
#: per line ("canonical words: phrase | phrase | ..."; indented lines continue the group).
#: Only the phrases that still change an answer of the hybrid engine on the development sets are
#: kept (``python -m bench.policy_synonyms``; 9 of 612, see BENCHMARKS.md): the embeddings bridge
#: the rest of the paraphrase.
DEFAULT_SYNONYMS_TEXT = """
referral refer bonus: inviting | finders fee
ai tools: gpt
time tracker tracking: timesheets
taxes withheld independent contractor: 1099
intellectual property belongs client: own them
instructions: confusing
leaving stop: quitting | weeks off
"""

#: stem -> stem, for irregular forms the stemmer leaves apart ("paid" vs "pay") and chat shorthand.
STEM_ALIASES: dict[str, str] = {
    "paid": "pay",
    "referr": "refer",
    "withheld": "withhold",
    "hr": "hour",
    "hrs": "hour",
    "wk": "week",
    "wks": "week",
    "min": "minut",
    "mins": "minut",
    "tix": "ticket",
    "msg": "messag",
    "info": "inform",
    "pls": "pleas",
    "thru": "through",
    "tho": "though",
    "cuz": "becaus",
    "bc": "becaus",
}

#: Chat filler and generic words that carry no policy meaning. They are ignored in queries and in
#: documents (in addition to the English stopword list), so they neither match nor count as unknown.
_FILLER_TEXT = """
    a about above after again against all also already always am an and any anybody anyone anything
    anyway anyways are aren arent around as ask asking at be because been before being below between
    both but by can cant could couldnt d did didnt do does doesnt doing don dont down during each
    either else even ever every everyone everything exactly few for from further get gets getting
    go goes going gone gonna got gotta guess guy guys had hadnt has hasnt have havent having he hello
    her here hers hey hi him his how hows i id idk if ill im in into is isnt it its itself ive just
    kind kinda know let lets like ll lol look m ma maybe me mean might mine more most much must my
    myself need needs never no nor not now o of ok okay on once one only or other others our ours out
    over own please pls plz probably quick quite re really right s said same say says see seems shall
    she should shouldnt so some somebody someone something sometimes soon sorry sort still stuff such
    sure t tell than thank thanks thats thx the their theirs them then there theres these they thing
    things think this those though thought through thru to too try trying ty u ugh um under until up
    ur us use used using usually ve very wanna want wants was wasnt way we well were werent what
    whats when whens where wheres whether which while who whos whom why will with without wonder
    wondering wont would wouldnt y ya yeah yes yet you youd youll your youre yours yourself actually
    basically literally honestly probably seriously hmm pretty btw fyi asap also hopefully
    quick question qq yo sup show happen happens happened happening make makes made take takes give gives
    keep put find come comes came feel today tomorrow yesterday tonight new old good bad best great
    lot lots many long bit little big whole real seem yall hey ever
    mandatory required compulsory obligatory necessary optional allowed permitted acceptable fine
    trouble problem problems issue issues policy policies rule rules consequence consequences
    higher lower less end start begin version etc case situation specifically exactly mistake
    """
FILLER_WORDS: frozenset[str] = frozenset(_FILLER_TEXT.split())


def parse_synonyms_text(text: str) -> dict[str, list[str]]:
    """Parse the compact ``canonical words: phrase | phrase`` format (indented lines continue)."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if raw.lstrip().startswith("#") else raw.rstrip()
        if not line.strip():
            continue
        if line[0].isspace():
            if current is None:
                raise ValueError(f"continuation line without a group: {raw!r}")
            current.extend(p.strip() for p in line.split("|") if p.strip())
            continue
        canonical, sep, phrases = line.partition(":")
        if not sep:
            raise ValueError(f"expected 'canonical words: phrase | phrase': {raw!r}")
        current = groups.setdefault(canonical.strip(), [])
        current.extend(p.strip() for p in phrases.split("|") if p.strip())
    return groups


DEFAULT_SYNONYMS: dict[str, list[str]] = parse_synonyms_text(DEFAULT_SYNONYMS_TEXT)

_WORD_RE = re.compile(r"[a-z0-9]+")
_APOSTROPHES = str.maketrans({"'": "", "\u2019": "", "\u2018": "", "`": ""})


def normalize_text(text: str) -> str:
    """Lowercase, strip accents (café -> cafe) and drop apostrophes (don't -> dont)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.lower().translate(_APOSTROPHES)


def tokenize(text: str) -> list[str]:
    """Split text into lowercase alphanumeric words (``"GPT-4's"`` -> ``["gpt", "4s"]``)."""
    return _WORD_RE.findall(normalize_text(text))


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def stem_words(words: Sequence[str]) -> list[str]:
    """Stem words with the English Snowball stemmer, then apply :data:`STEM_ALIASES`."""
    stems = _stemmer().stemWords(list(words))
    return [STEM_ALIASES.get(s, s) for s in stems]


_GAP = "..."


@dataclass(frozen=True)
class SynonymMatch:
    """One phrase found in a token sequence: tokens ``start:end`` map to ``canonical`` words."""

    start: int
    end: int
    canonical: tuple[str, ...]


class SynonymTable:
    """Compiled phrase -> canonical-words table, matched on stemmed token sequences.

    A phrase in double quotes (``"hourly"``) is matched on exact words instead of stems, for words
    whose stem collides with a more general one ("hourly" and "hours" both stem to "hour").
    """

    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        self.groups: dict[str, list[str]] = {canon: list(phrases) for canon, phrases in groups.items()}
        # first token -> list of (pattern, canonical words); a pattern is a tuple of tokens and _GAP.
        self._by_first: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        self._exact_by_first: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        self.words: set[str] = set()  # every surface word the table knows (for spelling correction)
        for canonical, phrases in self.groups.items():
            canon_words = tuple(tokenize(canonical))
            self.words.update(canon_words)
            for phrase in phrases:
                phrase = phrase.strip()
                exact = len(phrase) > 2 and phrase[0] == phrase[-1] == '"'
                pattern: list[str] = []
                for part in phrase.strip('"').split(_GAP):
                    words = tokenize(part)
                    self.words.update(words)
                    if pattern and words:
                        pattern.append(_GAP)
                    pattern.extend(words if exact else stem_words(words))
                if not pattern:
                    continue
                table = self._exact_by_first if exact else self._by_first
                entry = (tuple(pattern), canon_words)
                if entry not in table.get(pattern[0], ()):
                    table.setdefault(pattern[0], []).append(entry)

    def match(self, stems: Sequence[str], words: Sequence[str] | None = None) -> list[SynonymMatch]:
        """All phrase occurrences (overlaps allowed) in ``stems``, and for quoted phrases in ``words``
        (the unstemmed tokens; quoted phrases are skipped when they are not given)."""
        found: list[SynonymMatch] = []
        for tokens, table in ((stems, self._by_first), (words, self._exact_by_first)):
            if tokens is None:
                continue
            for i, token in enumerate(tokens):
                for pattern, canonical in table.get(token, ()):
                    end = _match_at(pattern, tokens, i)
                    if end is not None:
                        found.append(SynonymMatch(i, end, canonical))
        # the longest phrase wins: drop matches strictly inside a longer one ("payment schedule"
        # is about pay, even though "schedule" alone is about shifts)
        return [
            m
            for m in found
            if not any(
                o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start) for o in found
            )
        ]


def _match_at(pattern: tuple[str, ...], stems: Sequence[str], start: int) -> int | None:
    """End index if ``pattern`` matches ``stems`` at ``start`` (``...`` skips up to GAP_MAX words)."""
    pos = start
    p = 0
    while p < len(pattern):
        token = pattern[p]
        if token == _GAP:
            nxt = pattern[p + 1]
            for skip in range(GAP_MAX + 1):
                if pos + skip < len(stems) and stems[pos + skip] == nxt:
                    pos += skip
                    break
            else:
                return None
            p += 1
            continue
        if pos >= len(stems) or stems[pos] != token:
            return None
        pos += 1
        p += 1
    return pos


def load_synonyms(path: Path | None = None, *, extend_defaults: bool = True) -> SynonymTable:
    """Build a :class:`SynonymTable` from the defaults, optionally merged with a YAML file.

    The YAML file maps canonical words to a list of phrases. With ``extend_defaults=False`` the file
    replaces the defaults entirely.
    """
    groups: dict[str, list[str]] = (
        {k: list(v) for k, v in DEFAULT_SYNONYMS.items()} if extend_defaults else {}
    )
    if path is not None:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of canonical words to lists of phrases")
        for canonical, phrases in data.items():
            if isinstance(phrases, str):
                phrases = [phrases]
            groups.setdefault(str(canonical), []).extend(str(p) for p in phrases or ())
    return SynonymTable(groups)


@lru_cache(maxsize=1)
def default_synonyms() -> SynonymTable:
    """The built-in table (compiled once per process)."""
    return SynonymTable(DEFAULT_SYNONYMS)
