"""The dense half of policy retrieval: texts -> embeddings, cached on disk by content hash.

Each handbook section is embedded as several *units*: the heading with the whole text, each
``asks:`` variant, and each sentence (prefixed with the heading, so "Self-referrals do not count"
still knows it is about referrals). A FAQ entry is embedded as its question, and its question with
its answer. A document's dense score for a question is the best cosine similarity of its units; the
sentence similarities also choose the excerpt. At question time the only model call is one
embedding of the question; the rest is a matrix product.

:class:`Embedder` puts an on-disk cache in front of the encoder: a text's vector is stored under the
SHA-256 of the model id and the text, so start-up and ``/policy reload`` only embed the texts that
changed (an unchanged 1,000-section handbook starts with no model call at all). The model runs in
this process or, with ``POLICY_ENCODER=shared``, in the host's shared encoder process
(:mod:`domain.policy.shared_encoder`): the same vectors either way.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from domain.policy.embedding import BATCH_SIZE, DIMENSIONS, MODEL_ID, load_encoder
from domain.policy.shared_encoder import EncoderUnavailable

log = logging.getLogger(__name__)

#: Questions are embedded from at most this many characters (bounds the latency).
MAX_QUERY_CHARS = 400


def text_key(text: str) -> bytes:
    """The cache key of ``text``'s vector: SHA-256 of the model id and the text."""
    return hashlib.sha256(f"{MODEL_ID}\n{text}".encode()).digest()


class VectorCache:
    """Vectors by text hash, in two files of ``directory``: ``vectors.npy`` (float32 rows) and
    ``vectors.keys`` (32-byte keys, same order). Rewritten whole (atomically) when texts were added."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self._rows: dict[bytes, np.ndarray] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.directory is not None:
            self._read()

    def _paths(self) -> tuple[Path, Path]:
        assert self.directory is not None
        return self.directory / "vectors.npy", self.directory / "vectors.keys"

    def _read(self) -> None:
        matrix_path, keys_path = self._paths()
        try:
            keys = keys_path.read_bytes()
            matrix = np.load(matrix_path, allow_pickle=False)
        except (OSError, ValueError):
            return
        if matrix.ndim != 2 or matrix.shape[1] != DIMENSIONS or len(keys) != 32 * matrix.shape[0]:
            log.warning("ignoring the policy vector cache in %s: it does not match the model", self.directory)
            return
        self._rows = {keys[32 * i : 32 * i + 32]: matrix[i] for i in range(matrix.shape[0])}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> np.ndarray | None:
        return self._rows.get(key)

    def put(self, key: bytes, vector: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = vector
            self._dirty = True

    def save(self) -> None:
        """Write the cache if anything was added (no-op without a directory)."""
        if self.directory is None:
            return
        with self._lock:
            if not self._dirty:
                return
            keys = list(self._rows)
            matrix = (
                np.stack([self._rows[k] for k in keys]) if keys else np.zeros((0, DIMENSIONS), np.float32)
            )
            self._dirty = False
        matrix_path, keys_path = self._paths()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
            tmp_matrix, tmp_keys = Path(str(matrix_path) + suffix), Path(str(keys_path) + suffix)
            with open(tmp_matrix, "wb") as f:
                np.save(f, matrix.astype(np.float32), allow_pickle=False)
            tmp_keys.write_bytes(b"".join(keys))
            # keys last: a reader that sees new keys with an old matrix finds the sizes differ and ignores both
            tmp_matrix.replace(matrix_path)
            tmp_keys.replace(keys_path)
        except OSError as exc:
            log.warning("could not write the policy vector cache in %s: %s", self.directory, exc)


class TextEncoder(Protocol):
    """The model in this process (:class:`~domain.policy.embedding.Encoder`) or the host's shared
    one (:class:`~domain.policy.shared_encoder.SharedEncoder`, which may raise EncoderUnavailable)."""

    runtime: str  # onnxruntime, numpy or shared

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray: ...


class Embedder:
    """Embeddings of handbook texts (through the cache) and of questions.

    The encoder is loaded on first need: building an index whose texts are all cached needs no model.
    ``encoder`` is one, or a function returning one (None: lexical-only); by default the model is
    loaded into this process. ``encoded`` counts the texts actually sent to the model (cache misses),
    for tests and logs.
    """

    def __init__(
        self,
        cache_dir: Path | None,
        encoder: TextEncoder | Callable[[], TextEncoder | None] | None = None,
    ) -> None:
        self.cache = VectorCache(cache_dir)
        self.cache_dir = cache_dir
        self._encoder: TextEncoder | None = None
        self._factory: Callable[[], TextEncoder | None] = lambda: load_encoder(cache_dir)
        if callable(encoder):
            self._factory = encoder
        elif encoder is not None:
            self._encoder = encoder
        self._loaded = self._encoder is not None
        self.encoded = 0

    @property
    def encoder(self) -> TextEncoder | None:
        if not self._loaded:
            self._encoder = self._factory()
            self._loaded = True
        return self._encoder

    @property
    def available(self) -> bool:
        """False when the model is not installed: the engine then runs lexical-only."""
        return self.encoder is not None

    def texts(self, texts: Sequence[str]) -> np.ndarray | None:
        """Vectors of ``texts`` (cached ones from disk, the others embedded and cached)."""
        keys = [text_key(t) for t in texts]
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            row = self.cache.get(key)
            if row is None:
                missing.setdefault(key, []).append(i)
            else:
                out[i] = row
        if missing:
            encoder = self.encoder
            if encoder is None:
                return None
            todo = [texts[rows[0]] for rows in missing.values()]
            try:
                vectors = encoder.encode(todo)
            except EncoderUnavailable:
                return None  # lexical-only until the next rebuild (the encoder logged why)
            self.encoded += len(todo)
            for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                out[rows] = vector
                self.cache.put(key, vector)
            self.cache.save()
        return out

    def question(self, text: str) -> np.ndarray | None:
        """The vector of a question (not cached), or None without a model or when the shared
        encoder can't be reached (this question is then answered lexical-only)."""
        encoder = self.encoder
        if encoder is None:
            return None
        try:
            return encoder.encode([text[:MAX_QUERY_CHARS]])[0]
        except EncoderUnavailable:
            return None


@dataclass(frozen=True)
class DenseUnits:
    """The embedded units of an index's documents: ``matrix`` rows, the document each belongs to,
    and, per document, the row range of its sentences (for excerpts)."""

    matrix: np.ndarray  # (units, 384)
    doc_of: np.ndarray  # (units,) document index, non-decreasing: a document's units are contiguous
    sentence_rows: list[range]  # per document: rows of its sentences, in order

    def __post_init__(self) -> None:
        starts = (
            np.flatnonzero(np.r_[True, np.diff(self.doc_of) != 0]) if len(self.doc_of) else np.zeros(0, int)
        )
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_docs", self.doc_of[starts])
        ends = np.r_[starts[1:], len(self.doc_of)] if len(starts) else starts
        object.__setattr__(
            self,
            "_rows",
            {int(d): (int(a), int(b)) for d, a, b in zip(self.doc_of[starts], starts, ends, strict=True)},
        )

    def top_mean(self, similarities: np.ndarray, doc: int, k: int = 3) -> float:
        """Mean of the ``k`` best unit similarities of ``doc``: a question that several of a
        section's units (variants, sentences) are close to is more surely about it than one
        that a single unit happens to be close to."""
        start, end = self._rows.get(doc, (0, 0))  # type: ignore[attr-defined]
        if end <= start:
            return -1.0
        values = similarities[start:end]
        if len(values) > k:
            values = np.partition(values, len(values) - k)[-k:]
        return float(values.mean())

    def doc_scores(self, similarities: np.ndarray, n_docs: int) -> np.ndarray:
        """Best unit similarity per document (-1 for a document without units)."""
        scores = np.full(n_docs, -1.0, dtype=np.float64)
        if len(similarities):
            scores[self._docs] = np.maximum.reduceat(similarities, self._starts)  # type: ignore[attr-defined]
        return scores
