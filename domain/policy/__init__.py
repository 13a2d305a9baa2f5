"""Policy answers: the contractor handbook, parsed into sections, and the retrieval engine over it.

Typical use (the Slack layer holds one index and swaps it when the handbook or the FAQs change)::

    from domain.policy import PolicyIndex, load_handbook

    sections, errors = load_handbook(Path("policies"))   # errors: report them to the operator
    index = PolicyIndex.build(sections, faqs)            # faqs: FaqEntry rows saved by leads
    answer = index.answer("when is payday")
    if answer.confident:
        reply(answer.hit.title, answer.excerpt(), answer.hit.section.link)
    else:
        escalate_to_lead(question, answer.candidates)    # answer.off_topic: not a policy question
    index = index.with_faqs(updated_faqs)                # after a lead saves/edits/deletes a FAQ

The rules around the engine (recording questions, escalating, a lead's answer becoming a FAQ entry,
feedback, FAQ upkeep) are in :mod:`domain.policy.service`; the Slack side is ``jobs/policy.py`` (the live index and its flows) and ``handlers/policy.py`` (listeners).
"""

from domain.policy.handbook import EXCERPT_MAX_CHARS, HandbookError, Section, load_handbook
from domain.policy.index import (
    CONFIDENCE_THRESHOLD,
    OFF_TOPIC_COVERAGE,
    Answer,
    EvalCase,
    EvalReport,
    FaqEntry,
    Hit,
    IndexConfig,
    PolicyIndex,
    evaluate,
    load_eval_cases,
)
from domain.policy.synonyms import SynonymTable, load_synonyms

__all__ = [
    "CONFIDENCE_THRESHOLD",
    "EXCERPT_MAX_CHARS",
    "OFF_TOPIC_COVERAGE",
    "Answer",
    "EvalCase",
    "EvalReport",
    "FaqEntry",
    "HandbookError",
    "Hit",
    "IndexConfig",
    "PolicyIndex",
    "Section",
    "SynonymTable",
    "evaluate",
    "load_eval_cases",
    "load_handbook",
    "load_synonyms",
]
