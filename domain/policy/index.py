"""Retrieve the handbook section (or lead-saved FAQ) that answers a contractor's question.

**Hybrid (the default when the model is installed).** With an :class:`~domain.policy.semantic.Embedder`
the index also holds sentence embeddings of every document's units (:mod:`domain.policy.semantic`).
A question is embedded once; each document's dense score is its best unit similarity, and the
ranking is :func:`fuse` (dense + weighted lexical). The confidence is :func:`hybrid_confidence`, a
logistic function of the hit's :class:`HybridSignals` (its dense similarity, the mean of its three
best units, the lexical confidence below, and the margin over everyday "background" questions), and
the answer needs :data:`HYBRID_THRESHOLD`. The excerpt is chosen by the sentences' similarity to the
question.
Without the model the index is lexical-only, as follows.

Ranking is BM25 (the ``bm25s`` library, Lucene variant) over stemmed tokens (PyStemmer's English
Snowball stemmer). Paraphrase is bridged by:

* stemming and a few stem aliases ("paid" -> "pay");
* the synonym layer in :mod:`domain.policy.synonyms` ("my buddy signed up" adds "referral refer bonus");
* each section's ``asks:`` question variants, indexed with the section;
* FAQ entries saved by leads, indexed as their own documents;
* spelling correction of words the handbook does not know ("refferal" -> "referral").

Every hit gets a ``confidence`` in [0, 1] computed from two signals that mean the same thing on any
handbook, unlike raw BM25 scores:

* **coverage**: the IDF-weighted share of the question's content words that the hit contains. Words
  that appear nowhere in the handbook (and are not known slang) count against it, which is what makes
  "what's the weather in chicago" come out low.
* **margin**: how far the hit's score is ahead of the best hit on a *different* topic.

``confidence = coverage ** COVERAGE_EXPONENT * (MARGIN_FLOOR + (1 - MARGIN_FLOOR) * margin)``. Below
:data:`CONFIDENCE_THRESHOLD` the bot should escalate to a lead instead of answering. The threshold was
calibrated on ``tests/policy_eval.yaml``; see ``BENCHMARKS.md`` ("Policy answers") for the table.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS

from domain.policy.background import BACKGROUND_QUESTIONS
from domain.policy.handbook import (
    EXCERPT_MAX_CHARS,
    HandbookError,
    Section,
    excerpt_text,
    load_handbook,
    sentences,
    truncate,
)
from domain.policy.semantic import DenseUnits, Embedder
from domain.policy.synonyms import (
    FILLER_WORDS,
    SynonymTable,
    default_synonyms,
    stem_words,
    tokenize,
)

#: Hits with ``confidence`` below this are not answered; the question goes to a lead.
CONFIDENCE_THRESHOLD = 0.35
#: A question whose best coverage is below this is flagged ``off_topic`` (nothing in the handbook
#: is about it), in addition to being not confident.
OFF_TOPIC_COVERAGE = 0.3

#: Hybrid confidence: bias and weights of :meth:`HybridSignals.vector`, fitted on the development
#: sets by ``python -m bench.policy_calibrate``.
HYBRID_WEIGHTS = (-3.11, 3.05, 1.7, 5.12, 3.16)
#: Hybrid answers are given from this confidence up: ``bench.policy_calibrate --off-topic 0.93``, the
#: knee of the trade-off on the development sets (BENCHMARKS.md, "Policy answers, round 3").
HYBRID_THRESHOLD = 0.68
#: An escalated hybrid question is flagged off-topic when its best dense similarity is below this
#: (and its lexical coverage below OFF_TOPIC_COVERAGE).
OFF_TOPIC_DENSE = 0.3

#: Longer questions are cut to this many characters before analysis (bounds the latency).
MAX_QUESTION_CHARS = 2000

#: Shape of the confidence function (see the module docstring).
COVERAGE_EXPONENT = 1.0
MARGIN_FLOOR = 0.5

_STOPWORDS: frozenset[str] = frozenset(w.replace("'", "") for w in STOPWORDS_EN_PLUS) | FILLER_WORDS
_FILLER_STEMS: frozenset[str] = frozenset(stem_words(sorted(FILLER_WORDS)))


@dataclass(frozen=True)
class FaqEntry:
    """A question a lead answered, saved so the bot can answer it (and paraphrases) next time.

    ``section_id`` optionally ties the answer to the handbook section it elaborates on; a hit on the
    FAQ then also cites that section.
    """

    id: int
    question: str
    answer: str
    section_id: str | None = None


@dataclass(frozen=True)
class HybridSignals:
    """What the hybrid confidence is computed from, for one hit.

    ``dense``: best cosine similarity of the document's units; ``lexical``: the lexical-only
    confidence (coverage and BM25 margin); ``background_margin``: ``dense`` minus the question's
    similarity to the closest of :data:`~domain.policy.background.BACKGROUND_QUESTIONS` (negative
    when the question is more like everyday talk than like the hit); ``dense_top3``: the mean of
    the document's three best unit similarities.
    """

    dense: float
    lexical: float
    background_margin: float
    dense_top3: float  # mean of the document's 3 best unit similarities

    def vector(self) -> tuple[float, float, float, float]:
        return (self.dense, self.lexical, self.background_margin, self.dense_top3)


@dataclass(frozen=True)
class Hit:
    """One retrieved answer: a handbook section, or a FAQ entry (with its linked section, if any).

    ``score`` is the raw BM25 score (only comparable within one query); ``confidence`` is calibrated
    in [0, 1] and comparable across questions. ``coverage`` and ``margin`` are its two inputs.
    """

    section: Section | None
    faq: FaqEntry | None
    score: float
    confidence: float
    coverage: float = 0.0
    margin: float = 0.0
    dense: float = 0.0  # best cosine similarity of the document's units (hybrid engine only)
    sentence_scores: tuple[float, ...] | None = None  # per sentence of the body, for the excerpt
    signals: HybridSignals | None = None  # inputs of the hybrid confidence (hybrid engine only)

    @property
    def key(self) -> str:
        """Stable identifier of what was hit: ``"faq:<id>"`` or the section id."""
        if self.faq is not None:
            return f"faq:{self.faq.id}"
        return self.section.id if self.section is not None else ""

    @property
    def section_id(self) -> str | None:
        """The section this hit answers from (a FAQ's linked section, if any)."""
        return self.section.id if self.section is not None else None

    @property
    def title(self) -> str:
        """Human-readable label for citing the hit."""
        if self.faq is not None:
            return self.faq.question
        return self.section.heading if self.section is not None else ""

    def excerpt(self, query_terms: Iterable[str], max_chars: int = EXCERPT_MAX_CHARS) -> str:
        """Short quote for the answer: the FAQ's answer, or the section's most relevant sentences."""
        if self.faq is not None:
            return excerpt_text(self.faq.answer, query_terms, max_chars, self.sentence_scores) or truncate(
                self.faq.answer, max_chars
            )
        if self.section is None:
            return ""
        return excerpt_text(self.section.body, query_terms, max_chars, self.sentence_scores)


@dataclass(frozen=True)
class Answer:
    """The engine's decision for one question.

    ``hit`` is the best candidate (``None`` when nothing matched at all). ``confident`` is True only
    when the bot may answer with ``hit``; otherwise it should escalate, showing ``candidates`` to the
    lead. ``off_topic`` means the question is not about anything in the handbook.
    """

    hit: Hit | None
    candidates: list[Hit]
    confident: bool
    off_topic: bool
    question: str = ""
    terms: tuple[str, ...] = ()
    threshold: float = CONFIDENCE_THRESHOLD

    def excerpt(self, max_chars: int = EXCERPT_MAX_CHARS) -> str:
        """Quote of the best hit for this question ("" without a hit)."""
        return self.hit.excerpt(self.terms, max_chars) if self.hit is not None else ""


@dataclass(frozen=True)
class IndexConfig:
    """Retrieval knobs; the defaults are the measured best (see ``bench/policy.py``)."""

    k1: float = 1.2
    b: float = 0.75
    method: str = "lucene"
    heading_repeat: int = 2  # heading tokens counted this many times in the section document
    variant_docs: bool = False  # also index every `asks:` variant as its own document
    use_synonyms: bool = True
    use_variants: bool = True
    spelling: bool = True
    expansion_weight: float = 1.0  # query weight of words added by the synonym layer
    corrected_weight: float = 0.8  # query weight of spelling-corrected words
    unknown_weight: float = 1.5  # coverage penalty per unknown word, in units of the maximal IDF
    hybrid: bool = True  # use the embeddings when an embedder is given and the model is installed
    lexical_weight: float = 0.6  # weight of the lexical score in the fused ranking (see `fuse`)
    faq_bonus: float = 0.3  # added to a FAQ's fused score: a lead answered that very question


@dataclass(frozen=True)
class _Unit:
    """One content word of the question, for coverage: it is matched by a document that contains
    its own stem, or (scaled) the canonical stems of the synonym phrases it is part of."""

    own: str | None  # its stem, if the index knows it
    canonical: tuple[str, ...]  # indexed canonical stems of the synonym phrases covering the word
    credit: float  # < 1 for spelling-corrected words


@dataclass
class _Query:
    terms: dict[str, float]  # stem -> BM25 weight (only stems that exist in the index)
    units: list[_Unit]  # content words, for coverage
    unknown: list[str]  # content words unknown to the handbook and to the synonym layer
    words: list[str]  # surface words (corrected, plus synonym expansions) for excerpts


@dataclass
class _Doc:
    tokens: list[str]
    section: Section | None = None
    faq: FaqEntry | None = None

    @property
    def topic(self) -> str:
        if self.faq is not None:
            return self.faq.section_id or f"faq:{self.faq.id}"
        return self.section.id if self.section is not None else ""


@lru_cache(maxsize=65536)
def _is_content(word: str) -> bool:
    if word in _STOPWORDS or (len(word) == 1 and word.isalpha()):
        return False
    return stem_words([word])[0] not in _FILLER_STEMS


class Analyzer:
    """Text -> stems for indexing, and question -> weighted query terms."""

    def __init__(self, synonyms: SynonymTable | None = None, *, use_synonyms: bool = True) -> None:
        self.synonyms = synonyms if synonyms is not None else default_synonyms()
        self.use_synonyms = use_synonyms

    @staticmethod
    def is_content(word: str) -> bool:
        """False for stopwords, chat filler (and their inflections: "thinking") and single letters."""
        return _is_content(word)

    def doc_tokens(self, text: str, *, expand: bool = False) -> list[str]:
        """Stems of the content words of ``text`` (plus synonym expansions when ``expand``)."""
        words = tokenize(text)
        stems = stem_words(words)
        tokens = [s for w, s in zip(words, stems, strict=True) if self.is_content(w)]
        if expand and self.use_synonyms:
            for match in self.synonyms.match(stems, words):
                tokens.extend(self._canonical_stems(match.canonical))
        return tokens

    def _canonical_stems(self, canonical: Sequence[str]) -> list[str]:
        return stem_words([w for w in canonical if self.is_content(w)])

    def query(
        self,
        text: str,
        vocab: Mapping[str, int],
        speller: _Speller | None,
        config: IndexConfig,
    ) -> _Query:
        """Weighted BM25 terms and coverage units of a question."""
        words = tokenize(text)
        corrected: set[int] = set()
        if speller is not None:
            for i, word in enumerate(words):
                fixed = speller.correct(word)
                if fixed is not None and fixed != word:
                    words[i] = fixed
                    corrected.add(i)
        stems = stem_words(words)
        canonical_at: dict[int, list[str]] = {}
        expansions: dict[str, float] = {}
        expansion_words: list[str] = []
        phrase_units: dict[str, tuple[str, ...]] = {}
        if self.use_synonyms:
            for match in self.synonyms.match(stems, words):
                canon_words = [w for w in match.canonical if self.is_content(w)]
                canon = [c for c in stem_words(canon_words) if c in vocab]
                # a phrase found only thanks to a spelling correction weighs less
                weight = config.expansion_weight
                if all(i in corrected for i in range(match.start, match.end)):
                    weight *= config.corrected_weight
                for c in canon:
                    expansions[c] = max(expansions.get(c, 0.0), weight)
                for i in range(match.start, match.end):
                    canonical_at.setdefault(i, []).extend(canon)
                if canon and not any(self.is_content(words[i]) for i in range(match.start, match.end)):
                    # a phrase made only of filler words ("still own", "how many") is a unit itself
                    phrase_units[" ".join(stems[match.start : match.end])] = tuple(dict.fromkeys(canon))
                expansion_words.extend(canon_words)
        terms: dict[str, float] = {}
        units: dict[str, _Unit] = {}
        unknown: list[str] = []
        for i, (word, stem) in enumerate(zip(words, stems, strict=True)):
            if not self.is_content(word):
                continue
            credit = config.corrected_weight if i in corrected else 1.0
            canonical = tuple(dict.fromkeys(canonical_at.get(i, ())))
            if stem in vocab:
                terms[stem] = max(terms.get(stem, 0.0), credit)
                units.setdefault(stem, _Unit(stem, canonical, credit))
            elif canonical:
                units.setdefault(stem, _Unit(None, canonical, credit))
            elif not any(ch.isdigit() for ch in word):  # unknown, or slang for something not indexed
                unknown.append(word)
        for key, canonical in phrase_units.items():
            units.setdefault(key, _Unit(None, canonical, 1.0))
        for stem, weight in expansions.items():
            terms[stem] = max(terms.get(stem, 0.0), weight)
        return _Query(
            terms=terms, units=list(units.values()), unknown=unknown, words=[*words, *expansion_words]
        )


class _Speller:
    """Corrects words the handbook does not know to a known word at edit distance 1 (2 for long words).

    Candidate generation is SymSpell-style (single deletions on both sides), so a lookup is a handful
    of dict probes regardless of the vocabulary size.
    """

    MIN_LENGTH = 5
    LONG_WORD = 8

    def __init__(self, counts: Mapping[str, int], known: Iterable[str]) -> None:
        self.known = set(known) | set(counts)
        self.counts = {
            w: c
            for w, c in counts.items()
            if w.isalpha() and len(w) >= self.MIN_LENGTH - 1 and Analyzer.is_content(w)
        }
        self.deletes: dict[str, list[str]] = {}
        for word in self.counts:
            for d in _deletes(word):
                self.deletes.setdefault(d, []).append(word)

    def correct(self, word: str) -> str | None:
        if word in self.known or len(word) < self.MIN_LENGTH or not word.isalpha():
            return None
        candidates = set(self.deletes.get(word, ()))
        for d in _deletes(word):
            if d in self.counts:
                candidates.add(d)
            candidates.update(self.deletes.get(d, ()))
        limit = 2 if len(word) >= self.LONG_WORD else 1
        best: tuple[int, int, str] | None = None
        for cand in candidates:
            dist = _osa_distance(word, cand, limit)
            if dist <= limit:
                key = (dist, -self.counts[cand], cand)
                if best is None or key < best:
                    best = key
        return best[2] if best is not None else None


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent transpositions), capped."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


class PolicyIndex:
    """Search index over handbook sections and lead-saved FAQ entries.

    Build it once per handbook load with :meth:`build`; when leads add, edit or delete FAQ entries,
    call :meth:`with_faqs` (re-uses the analysed sections, only the FAQ documents are re-analysed).
    Instances are immutable after construction and safe to share between threads.
    """

    def __init__(
        self,
        sections: Sequence[Section],
        faqs: Sequence[FaqEntry],
        *,
        config: IndexConfig,
        analyzer: Analyzer,
        section_docs: list[_Doc],
        section_counts: Counter[str],
        embedder: Embedder | None = None,
    ) -> None:
        self.sections: list[Section] = list(sections)
        self.faqs: list[FaqEntry] = list(faqs)
        self.config = config
        self._analyzer = analyzer
        self._section_docs = section_docs
        self._section_counts = section_counts
        self._by_id = {s.id: s for s in self.sections}

        faq_docs: list[_Doc] = []
        counts = Counter(section_counts)
        for faq in self.faqs:
            question_tokens = analyzer.doc_tokens(faq.question, expand=True)
            tokens = question_tokens * 2 + analyzer.doc_tokens(faq.answer)
            faq_docs.append(_Doc(tokens=tokens, section=self._by_id.get(faq.section_id or ""), faq=faq))
            counts.update(tokenize(faq.question))
            counts.update(tokenize(faq.answer))
        self._docs: list[_Doc] = [*section_docs, *faq_docs]
        self._topics = [d.topic for d in self._docs]
        self._is_faq = np.array([d.faq is not None for d in self._docs], dtype=np.float64)

        self._bm25: bm25s.BM25 | None = None
        self._vocab: dict[str, int] = {}
        self._idf = np.zeros(0, dtype=np.float32)
        self._max_idf = 0.0
        if self._docs:
            bm25 = bm25s.BM25(k1=config.k1, b=config.b, method=config.method)
            bm25.index([d.tokens or [""] for d in self._docs], show_progress=False)
            self._bm25 = bm25
            self._vocab = {t: i for t, i in bm25.vocab_dict.items() if t}
            n = len(self._docs)
            df = np.diff(np.asarray(bm25.scores["indptr"])).astype(np.float64)
            self._idf = np.log1p((n - df + 0.5) / (df + 0.5))
            self._max_idf = math.log1p((n + 0.5) / 0.5)
        known = set(analyzer.synonyms.words) | _STOPWORDS
        self._speller = _Speller(counts, known) if config.spelling else None
        self._embedder = embedder if config.hybrid else None
        self._dense = _embed_docs(self._docs, self._embedder) if self._embedder is not None else None
        self._background = (
            self._embedder.texts(BACKGROUND_QUESTIONS)
            if self._embedder is not None and self._dense is not None
            else None
        )
        if self._dense is None:
            self._embedder = None  # no model installed: lexical-only

    @property
    def hybrid(self) -> bool:
        """True when answers use the embeddings as well as BM25."""
        return self._dense is not None

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        sections: list[Section],
        faqs: Iterable[FaqEntry] = (),
        *,
        config: IndexConfig | None = None,
        synonyms: SynonymTable | None = None,
        embedder: Embedder | None = None,
    ) -> PolicyIndex:
        """Index ``sections`` (from :func:`~domain.policy.handbook.load_handbook`) and ``faqs``.

        With an ``embedder`` (and the model installed) the index is hybrid; texts already in its
        cache are not embedded again.
        """
        config = config or IndexConfig()
        analyzer = Analyzer(synonyms, use_synonyms=config.use_synonyms)
        docs: list[_Doc] = []
        counts: Counter[str] = Counter()
        for section in sections:
            variants = section.variants if config.use_variants else []
            heading = analyzer.doc_tokens(section.heading, expand=True)
            variant_tokens = [analyzer.doc_tokens(v, expand=True) for v in variants]
            body_text = section.text
            tokens = heading * config.heading_repeat + [t for v in variant_tokens for t in v]
            tokens += analyzer.doc_tokens(body_text)
            docs.append(_Doc(tokens=tokens, section=section))
            if config.variant_docs:
                docs.extend(_Doc(tokens=heading + v, section=section) for v in variant_tokens)
            counts.update(tokenize(section.heading))
            counts.update(tokenize(body_text))
            for v in variants:
                counts.update(tokenize(v))
        return cls(
            sections,
            list(faqs),
            config=config,
            analyzer=analyzer,
            section_docs=docs,
            section_counts=counts,
            embedder=embedder,
        )

    @classmethod
    def from_directory(
        cls, directory: Path, faqs: Iterable[FaqEntry] = (), *, config: IndexConfig | None = None
    ) -> tuple[PolicyIndex, list[HandbookError]]:
        """Load a handbook directory and index it; returns the index and the files' problems."""
        sections, errors = load_handbook(directory)
        return cls.build(sections, faqs, config=config), errors

    def with_faqs(self, faqs: Iterable[FaqEntry]) -> PolicyIndex:
        """A new index with the same sections and this FAQ list (replaces the previous FAQs)."""
        return PolicyIndex(
            self.sections,
            list(faqs),
            config=self.config,
            analyzer=self._analyzer,
            section_docs=self._section_docs,
            section_counts=self._section_counts,
            embedder=self._embedder,
        )

    @property
    def threshold(self) -> float:
        """The confidence an answer needs: the hybrid and the lexical-only signals differ in scale."""
        return HYBRID_THRESHOLD if self.hybrid else CONFIDENCE_THRESHOLD

    def section(self, section_id: str) -> Section | None:
        """The section with this id, if the handbook has it."""
        return self._by_id.get(section_id)

    # ---------------------------------------------------------------------------------- searching
    def search(self, question: str, k: int = 3) -> list[Hit]:
        """The ``k`` best hits for ``question``, best first (at most one hit per document)."""
        return self._search(question, k)[0]

    def answer(self, question: str, threshold: float | None = None) -> Answer:
        """Decide whether ``question`` can be answered from the handbook, and with what.

        ``threshold`` overrides :data:`CONFIDENCE_THRESHOLD` for this call.
        """
        threshold = self.threshold if threshold is None else threshold
        hits, query, best_coverage = self._search(question, 3)
        hit = hits[0] if hits else None
        if hit is not None and hit.sentence_scores is not None:  # hybrid: the calibrated signal decides
            confident = hit.confidence >= threshold
            off_topic = not confident and best_coverage < OFF_TOPIC_COVERAGE and hit.dense < OFF_TOPIC_DENSE
        else:
            off_topic = hit is None or best_coverage < OFF_TOPIC_COVERAGE
            confident = hit is not None and not off_topic and hit.confidence >= threshold
        return Answer(
            hit=hit,
            candidates=hits,
            confident=confident,
            off_topic=off_topic,
            question=question,
            terms=tuple(query.words) if query is not None else (),
            threshold=threshold,
        )

    def _search(self, question: str, k: int) -> tuple[list[Hit], _Query | None, float]:
        if not self._docs or k <= 0:
            return [], None, 0.0
        question = question[:MAX_QUESTION_CHARS]
        query = self._analyzer.query(question, self._vocab, self._speller, self.config)
        if not query.terms and not query.units and not query.unknown:
            return [], query, 0.0  # nothing but filler ("hi", "?? lol")
        n = len(self._docs)
        scores = np.zeros(n, dtype=np.float64)
        present: dict[str, np.ndarray] = {}
        if self._bm25 is not None:
            for stem, weight in query.terms.items():
                term_scores = self._bm25.get_scores_from_ids([self._vocab[stem]])
                scores += weight * term_scores
                present[stem] = term_scores > 0
        coverage = self._coverage(query, present, n) if query.terms else np.zeros(n)
        best_coverage = float(coverage.max())
        vector = self._embedder.question(question) if self._embedder is not None else None
        if vector is None or self._dense is None:
            if not query.terms:
                return [], query, 0.0
            return self._lexical_hits(scores, coverage, k), query, best_coverage
        return self._hybrid_hits(vector, scores, coverage, k), query, best_coverage

    def _lexical_hits(self, scores: np.ndarray, coverage: np.ndarray, k: int) -> list[Hit]:
        order = np.argsort(-scores, kind="stable")
        hits: list[Hit] = []
        seen: set[str] = set()
        for i in order:
            score = float(scores[i])
            if score <= 0 or len(hits) >= k:
                break
            doc = self._docs[i]
            other = self._best_other(order, scores, self._topics[i])
            margin = max(0.0, 1.0 - other / score)
            cov = float(coverage[i])
            hit = Hit(
                section=doc.section,
                faq=doc.faq,
                score=score,
                confidence=_confidence(cov, margin),
                coverage=cov,
                margin=margin,
            )
            if hit.key in seen:  # a section's variant documents: keep its best one
                continue
            seen.add(hit.key)
            hits.append(hit)
        return hits

    def _hybrid_hits(self, vector: np.ndarray, scores: np.ndarray, coverage: np.ndarray, k: int) -> list[Hit]:
        """Fuse the dense and lexical scores (see :func:`fuse`) and calibrate the confidence."""
        assert self._dense is not None
        similarities = self._dense.matrix @ vector
        background = float((self._background @ vector).max()) if self._background is not None else 0.0
        dense = self._dense.doc_scores(similarities, len(self._docs))
        top_lexical = float(scores.max())
        lexical = scores / top_lexical if top_lexical > 0 else scores
        fused = fuse(dense, lexical, coverage, self.config) + self.config.faq_bonus * self._is_faq
        order = np.argsort(-fused, kind="stable")
        lexical_order = np.argsort(-scores, kind="stable")
        hits: list[Hit] = []
        seen: set[str] = set()
        for i in order:
            if len(hits) >= k:
                break
            doc = self._docs[i]
            score = float(scores[i])
            margin = (
                max(0.0, 1.0 - self._best_other(lexical_order, scores, self._topics[i]) / score)
                if score
                else 0.0
            )
            cov = float(coverage[i])
            rows = self._dense.sentence_rows[i]
            signals = HybridSignals(
                dense=float(dense[i]),
                lexical=_confidence(cov, margin),
                background_margin=float(dense[i]) - background,
                dense_top3=self._dense.top_mean(similarities, int(i)),
            )
            hit = Hit(
                section=doc.section,
                faq=doc.faq,
                score=float(fused[i]),
                confidence=hybrid_confidence(signals),
                coverage=cov,
                margin=margin,
                dense=float(dense[i]),
                signals=signals,
                sentence_scores=tuple(float(x) for x in similarities[rows.start : rows.stop]),
            )
            if hit.key in seen:
                continue
            seen.add(hit.key)
            hits.append(hit)
        return hits

    def _coverage(self, query: _Query, present: dict[str, np.ndarray], n: int) -> np.ndarray:
        """IDF-weighted share of the question's content words each document matches.

        A word matches if the document has its stem, or partially, in proportion to the IDF mass of
        its synonym phrase's canonical stems the document has. Unknown words count as unmatched with
        the largest possible IDF (times ``unknown_weight``); corrected words give partial credit.
        """
        idf = self._idf
        vocab = self._vocab
        matched = np.zeros(n, dtype=np.float64)
        total = self.config.unknown_weight * self._max_idf * len(query.unknown)
        for unit in query.units:
            canon_idf = np.array([idf[vocab[c]] for c in unit.canonical], dtype=np.float64)
            if unit.own is not None:
                mass = float(idf[vocab[unit.own]])
                hit = present[unit.own].astype(np.float64)
            else:
                mass = float(canon_idf.mean())
                hit = np.zeros(n, dtype=np.float64)
            if unit.canonical:
                share = sum(w * present[c] for w, c in zip(canon_idf, unit.canonical, strict=True))
                hit = np.maximum(hit, share / canon_idf.sum())
            matched += mass * unit.credit * hit
            total += mass
        if total <= 0:
            return matched
        return matched / total

    def _best_other(self, order: np.ndarray, scores: np.ndarray, topic: str) -> float:
        for j in order:
            if self._topics[j] != topic:
                return float(scores[j])
        return 0.0


def fuse(dense: np.ndarray, lexical: np.ndarray, coverage: np.ndarray, config: IndexConfig) -> np.ndarray:
    """Hybrid ranking score: the dense similarity plus the lexical score (BM25 relative to the best
    document, times the share of the question's words the document covers), weighted."""
    return dense + config.lexical_weight * lexical * coverage


def hybrid_confidence(signals: HybridSignals) -> float:
    """Calibrated probability that the hit answers the question: a logistic function of its
    :class:`HybridSignals`, fitted on the development sets by ``bench/policy_calibrate.py``
    (BENCHMARKS.md, "Policy answers, hybrid")."""
    z = HYBRID_WEIGHTS[0] + sum(w * x for w, x in zip(HYBRID_WEIGHTS[1:], signals.vector(), strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def _confidence(coverage: float, margin: float) -> float:
    value = coverage**COVERAGE_EXPONENT * (MARGIN_FLOOR + (1.0 - MARGIN_FLOOR) * margin)
    return min(1.0, max(0.0, value))


# ------------------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class EvalCase:
    """One labelled question: ``expected`` is a section id, or ``None`` for off-topic."""

    question: str
    expected: str | None


@dataclass
class EvalReport:
    """Outcome of running an evaluation set through :meth:`PolicyIndex.answer`."""

    threshold: float
    on_topic: int = 0
    off_topic: int = 0
    top1_correct: int = 0  # regardless of confidence
    answered_correct: int = 0
    answered_wrong: int = 0
    escalated: int = 0  # on-topic questions the bot would escalate
    off_topic_escalated: int = 0
    misses: list[tuple[str, str | None, str | None, float]] = field(default_factory=list)

    @property
    def top1_accuracy(self) -> float:
        return self.top1_correct / self.on_topic if self.on_topic else 0.0

    @property
    def off_topic_escalation_rate(self) -> float:
        return self.off_topic_escalated / self.off_topic if self.off_topic else 1.0

    def row(self) -> str:
        n = self.on_topic or 1
        return (
            f"{self.threshold:>9.2f} | {self.answered_correct / n:>6.1%} | {self.answered_wrong / n:>6.1%} | "
            f"{self.escalated / n:>6.1%} | {self.off_topic_escalation_rate:>6.1%}"
        )


def evaluate(index: PolicyIndex, cases: Iterable[EvalCase], threshold: float | None = None) -> EvalReport:
    """Top-1 accuracy and answer/escalate outcomes of ``cases`` at ``threshold``."""
    threshold = index.threshold if threshold is None else threshold
    report = EvalReport(threshold=threshold)
    for case in cases:
        answer = index.answer(case.question, threshold=threshold)
        got = answer.hit.section_id if answer.hit is not None else None
        confidence = answer.hit.confidence if answer.hit is not None else 0.0
        if case.expected is None:
            report.off_topic += 1
            if not answer.confident:
                report.off_topic_escalated += 1
            else:
                report.misses.append((case.question, None, got, confidence))
            continue
        report.on_topic += 1
        correct = got == case.expected
        report.top1_correct += correct
        if not answer.confident:
            report.escalated += 1
        elif correct:
            report.answered_correct += 1
        else:
            report.answered_wrong += 1
        if not correct:
            report.misses.append((case.question, case.expected, got, confidence))
    return report


def load_eval_cases(path: Path, key: str = "questions") -> list[EvalCase]:
    """Read ``<key>: [{q: ..., expected: ...}]`` from a YAML evaluation file."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return [EvalCase(question=str(item["q"]), expected=item.get("expected")) for item in data.get(key) or ()]


__all__ = [
    "CONFIDENCE_THRESHOLD",
    "OFF_TOPIC_COVERAGE",
    "Analyzer",
    "Answer",
    "EvalCase",
    "EvalReport",
    "FaqEntry",
    "Hit",
    "IndexConfig",
    "PolicyIndex",
    "evaluate",
    "load_eval_cases",
]


def _embed_docs(docs: Sequence[_Doc], embedder: Embedder) -> DenseUnits | None:
    """Embed every document's units (see :mod:`domain.policy.semantic`); None without a model."""
    texts: list[str] = []
    doc_of: list[int] = []
    sentence_rows: list[range] = []
    done: set[str] = set()
    for i, doc in enumerate(docs):
        if doc.faq is not None:
            units = [doc.faq.question, f"{doc.faq.question} {doc.faq.answer}"]
            body = [f"{doc.faq.question}: {s}" for s in sentences(doc.faq.answer)]
        elif doc.section is not None and doc.section.id not in done:
            done.add(doc.section.id)
            section = doc.section
            units = [f"{section.heading}. {section.text}", *section.variants]
            body = [f"{section.heading}: {s}" for s in sentences(section.body)]
        else:  # a section's extra variant document: its section's units speak for it
            units, body = [], []
        texts.extend(units)
        doc_of.extend([i] * len(units))
        sentence_rows.append(range(len(texts), len(texts) + len(body)))
        texts.extend(body)
        doc_of.extend([i] * len(body))
    matrix = embedder.texts(texts)
    if matrix is None:
        return None
    return DenseUnits(matrix=matrix, doc_of=np.asarray(doc_of, dtype=np.int64), sentence_rows=sentence_rows)
