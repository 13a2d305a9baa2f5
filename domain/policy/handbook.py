"""Parse a Markdown contractor handbook into citable sections.

A handbook is a directory of ``*.md`` files. In each file the ``# `` heading is the document title and
every ``## `` heading starts a section (deeper headings stay inside their section). A file without any
``## `` heading is split on its ``# `` headings instead.

Right under a heading, an operator can list question variants that bridge paraphrase; they are an
HTML comment, so they do not show when the Markdown is rendered::

    ## Payday
    <!-- asks: when do I get paid? | what day is payday -->

Broken files are reported as :class:`HandbookError` and skipped; everything else is still served.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bm25s.stopwords import STOPWORDS_EN_PLUS

from domain.policy.synonyms import stem_words, tokenize

#: Longest excerpt quoted from a section by default.
EXCERPT_MAX_CHARS = 400

_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*(?:[ \t]#+[ \t]*)?$")
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_ASKS_RE = re.compile(r"<!--\s*asks?\s*:(.*?)-->", re.IGNORECASE | re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(\*{1,3}|_{1,3}|`+|~~)")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_EXCERPT_STOPWORDS = frozenset(w.replace("'", "") for w in STOPWORDS_EN_PLUS)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9$])")


@dataclass(frozen=True)
class HandbookError:
    """A handbook file (or one of its sections) that could not be served, and why."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"


@dataclass(frozen=True)
class Section:
    """One citable topic of the handbook.

    ``id`` is stable as long as the file name and heading do not change: ``"<file stem>#<anchor>"``.
    ``anchor`` is the GitHub-style heading anchor, so ``f"{file}#{anchor}"`` links to the section.
    ``body`` is the section's Markdown without the ``asks:`` comment.
    """

    id: str
    file: str
    heading: str
    body: str
    variants: list[str] = field(default_factory=list)
    anchor: str = ""
    title: str = ""

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def link(self) -> str:
        """Relative link to the section, e.g. ``"pay-and-hours.md#payday"``."""
        return f"{self.file}#{self.anchor}"

    @property
    def text(self) -> str:
        """The body as plain text (Markdown markup, comments and list markers removed)."""
        return " ".join(_plain_lines(self.body))

    def excerpt(self, query_terms: Iterable[str], max_chars: int = EXCERPT_MAX_CHARS) -> str:
        """A short quote of the sentence(s) most relevant to ``query_terms``.

        Sentences are ranked by how many distinct query stems they contain (earlier sentences win
        ties; with no overlap at all the section's first sentence is used). The best sentence, the
        others that match as well, then the one after the best are quoted in document order while
        they fit in ``max_chars``; non-adjacent sentences are joined with " … ". A sentence longer
        than ``max_chars`` is cut on a word boundary and ends with "…".
        """
        return excerpt_text(self.body, query_terms, max_chars)


def load_handbook(directory: Path) -> tuple[list[Section], list[HandbookError]]:
    """Load every ``*.md`` file directly in ``directory`` (sorted by name; sub-directories are ignored).

    Returns the sections that could be parsed and the problems found. A file that is unreadable, not
    UTF-8, empty or without headings is skipped as a whole; a heading with no body is reported and
    only that section is skipped (the file's other sections are served).
    """
    directory = Path(directory)
    sections: list[Section] = []
    errors: list[HandbookError] = []
    if not directory.is_dir():
        return [], [HandbookError(str(directory), "handbook directory does not exist")]
    for path in sorted(directory.glob("*.md")):
        rel = path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            errors.append(HandbookError(rel, f"unreadable: {exc.strerror or exc}"))
            continue
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            errors.append(HandbookError(rel, f"not valid UTF-8 (byte {exc.start})"))
            continue
        file_sections, file_errors = parse_markdown(text, rel)
        sections.extend(file_sections)
        errors.extend(file_errors)
    return sections, errors


def parse_markdown(text: str, file: str) -> tuple[list[Section], list[HandbookError]]:
    """Split one Markdown document into sections (see the module docstring for the rules)."""
    if not text.strip():
        return [], [HandbookError(file, "empty file")]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings: list[tuple[int, int, str]] = []  # (line number, level, text)
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _HEADING_RE.match(line)
        if m and m.group(2).strip():
            headings.append((i, len(m.group(1)), m.group(2).strip()))
    if not headings:
        return [], [HandbookError(file, "no headings (sections start with '## ')")]

    title = next((h for _, level, h in headings if level == 1), "")
    split_level = 2 if any(level == 2 for _, level, _ in headings) else 1
    if split_level == 1 and not any(level == 1 for _, level, _ in headings):
        return [], [HandbookError(file, "no '#' or '##' headings (sections start with '## ')")]
    stem = file[:-3] if file.lower().endswith(".md") else file

    # GitHub numbers repeated anchors over all headings of the document, in order.
    used_anchors: dict[str, int] = {}
    anchors = {i: _unique_anchor(github_anchor(h), used_anchors) for i, _, h in headings}

    sections: list[Section] = []
    errors: list[HandbookError] = []
    starts = [(i, level, h) for i, level, h in headings if level <= split_level]
    for n, (start, level, heading) in enumerate(starts):
        anchor = anchors[start]
        if level < split_level:  # the document title: not a section itself
            continue
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        chunk = "\n".join(lines[start + 1 : end])
        variants = [v for m in _ASKS_RE.finditer(chunk) for v in _split_variants(m.group(1))]
        body = _ASKS_RE.sub("", chunk).strip("\n").strip()
        if not _COMMENT_RE.sub("", body).strip():
            errors.append(HandbookError(file, f"section {heading!r} has no body"))
            continue
        sections.append(
            Section(
                id=f"{stem}#{anchor}",
                file=file,
                heading=_plain_inline(heading),
                body=body,
                variants=variants,
                anchor=anchor,
                title=_plain_inline(title),
            )
        )
    return sections, errors


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: plain text, lowercased, punctuation dropped, spaces -> hyphens."""
    text = _plain_inline(heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _unique_anchor(anchor: str, used: dict[str, int]) -> str:
    """GitHub de-duplicates repeated headings in one document as ``anchor-1``, ``anchor-2``..."""
    if anchor not in used:
        used[anchor] = 0
        return anchor
    used[anchor] += 1
    candidate = f"{anchor}-{used[anchor]}"
    used.setdefault(candidate, 0)
    return candidate


def _split_variants(raw: str) -> list[str]:
    return [v.strip() for v in re.split(r"[|\n]", raw) if v.strip()]


def _plain_inline(text: str) -> str:
    text = _COMMENT_RE.sub("", text)
    text = _LINK_RE.sub(r"\1", text)
    return _EMPHASIS_RE.sub("", text).strip()


def _plain_lines(markdown: str) -> list[str]:
    """Markdown body -> plain-text blocks: one per list item or paragraph (wrapped lines joined)."""
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in _COMMENT_RE.sub("", markdown).split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        stripped = line.strip()
        is_item = bool(_LIST_MARKER_RE.match(line))
        heading = _HEADING_RE.match(line)
        if not stripped or is_item or heading or in_fence or stripped.startswith("|"):
            if current:
                blocks.append(" ".join(current))
                current = []
            if not stripped or in_fence:
                continue
            if heading:
                stripped = heading.group(2)
            elif is_item:
                stripped = _LIST_MARKER_RE.sub("", line).strip()
        current.append(_plain_inline(stripped.lstrip(">").strip()))
    if current:
        blocks.append(" ".join(current))
    return [b for b in blocks if b]


def sentences(markdown: str) -> list[str]:
    """Plain-text sentences of a Markdown body (list items count as sentences)."""
    out: list[str] = []
    for block in _plain_lines(markdown):
        out.extend(s.strip() for s in _SENTENCE_SPLIT_RE.split(block) if s.strip())
    return out


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters on a word boundary, ending with "…"."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    cut = text[: max(max_chars - 1, 0)]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—(") + "…"


def excerpt_text(
    markdown: str,
    query_terms: Iterable[str],
    max_chars: int = EXCERPT_MAX_CHARS,
    sentence_scores: Sequence[float] | None = None,
) -> str:
    """The most relevant sentence(s) of ``markdown`` for ``query_terms`` (see :meth:`Section.excerpt`).

    With ``sentence_scores`` (the question's similarity to each sentence, from the hybrid engine)
    sentences are ranked by that plus a small bonus per query stem they contain; the best is quoted,
    with the one after it when that one carries a figure and the section's lead sentence (its rule),
    then the next best while they fit.
    """
    sents = sentences(markdown)
    if sentence_scores is not None and len(sentence_scores) == len(sents) and sents:
        return _semantic_excerpt(sents, query_terms, max_chars, sentence_scores)
    if not sents:
        return ""
    wanted = set(
        stem_words([w for term in query_terms for w in tokenize(term) if w not in _EXCERPT_STOPWORDS])
    )
    scored = []
    for pos, sentence in enumerate(sents):
        words = [w for w in tokenize(sentence) if w not in _EXCERPT_STOPWORDS]
        overlap = len(wanted & set(stem_words(words)))
        scored.append((overlap, pos))
    ranked = sorted(scored, key=lambda item: (-item[0], item[1]))
    best_overlap, best_pos = ranked[0]
    if len(sents[best_pos]) > max_chars:
        return truncate(sents[best_pos], max_chars)
    chosen = {best_pos}
    length = len(sents[best_pos])
    # add the other sentences that match as well as the best one, then the next one for context
    extras = [pos for overlap, pos in ranked[1:] if overlap == best_overlap > 0]
    if best_pos + 1 < len(sents) and best_pos + 1 not in extras:
        extras.append(best_pos + 1)
    for pos in extras:
        if length + len(sents[pos]) + 3 <= max_chars:
            chosen.add(pos)
            length += len(sents[pos]) + 3
    return _join(sents, chosen)


#: Bonus per query stem a sentence contains, added to its similarity when choosing the excerpt.
EXCERPT_LEXICAL_BONUS = 0.05


def _semantic_excerpt(
    sents: list[str], query_terms: Iterable[str], max_chars: int, scores: Sequence[float]
) -> str:
    wanted = set(
        stem_words([w for term in query_terms for w in tokenize(term) if w not in _EXCERPT_STOPWORDS])
    )

    def rank(pos: int) -> float:
        words = [w for w in tokenize(sents[pos]) if w not in _EXCERPT_STOPWORDS]
        return scores[pos] + EXCERPT_LEXICAL_BONUS * len(wanted & set(stem_words(words)))

    ranked = sorted(range(len(sents)), key=lambda pos: -rank(pos))
    best = ranked[0]
    if len(sents[best]) > max_chars:
        return truncate(sents[best], max_chars)
    chosen = {best}
    length = len(sents[best])
    # the sentence after the best one goes first when it carries a figure ("...after 10 hours"),
    # then the section's lead sentence, which states its rule ("You earn a $250 bonus for each...")
    following = [best + 1] if best + 1 < len(sents) and any(ch.isdigit() for ch in sents[best + 1]) else []
    following += [0] if best != 0 and 0 not in following else []
    extras = following + [p for p in ranked[1:] if p not in following]
    for pos in extras:
        if length + len(sents[pos]) + 3 <= max_chars:
            chosen.add(pos)
            length += len(sents[pos]) + 3
    return _join(sents, chosen)


def _join(sents: list[str], chosen: set[int]) -> str:
    parts: list[str] = []
    previous = None
    for pos in sorted(chosen):
        if previous is not None:
            parts.append(" " if pos == previous + 1 else " … ")
        parts.append(sents[pos])
        previous = pos
    return "".join(parts)
