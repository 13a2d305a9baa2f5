"""Score the policy engine on a labelled question set the way a contractor would judge it.

Run from the repo root::

    .venv/bin/python -m bench.policy_accuracy tests/policy_blind5_eval.yaml        # aggregates only
    .venv/bin/python -m bench.policy_accuracy tests/policy_blind3_eval.yaml --misses  # dev sets only

An on-topic question (``expected`` is a section id) counts as **right** only when the bot answers it
(does not escalate) from that section *and* the excerpt it shows contains the question's ``fact``
verbatim (case-insensitive); questions without a ``fact`` need the right section only. An off-topic
question (``expected: null``) counts as right when it is escalated.

The output is aggregate numbers only. ``--misses`` lists the failed questions, and refuses to on
the blind set (``policy_blind5_eval.yaml``): that set is scored, never read, so it stays blind.
The earlier blind sets (``policy_blind_eval.yaml``, ``policy_blind2_eval.yaml``,
``policy_blind3_eval.yaml``, ``policy_blind4_eval.yaml``) are spent: they are development sets now.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from domain.policy import IndexConfig, PolicyIndex, load_handbook
from domain.policy.semantic import Embedder

ROOT = Path(__file__).resolve().parents[1]
BLIND = "policy_blind5_eval.yaml"


@dataclass
class Score:
    on_topic: int = 0
    right_section: int = 0  # answered from the right section (excerpt not checked)
    right: int = 0  # answered from the right section with the fact in the excerpt
    escalated: int = 0  # on-topic questions sent to a lead
    off_topic: int = 0
    off_topic_escalated: int = 0

    def lines(self) -> list[str]:
        on, off = self.on_topic or 1, self.off_topic or 1
        return [
            f"on-topic   {self.on_topic:4d}: right section + fact {self.right / on:6.1%} "
            f"({self.right}), right section {self.right_section / on:6.1%}, escalated {self.escalated / on:6.1%}",
            f"off-topic  {self.off_topic:4d}: escalated {self.off_topic_escalated / off:6.1%} "
            f"({self.off_topic_escalated})",
        ]


def score(index: PolicyIndex, cases: list[dict[str, object]], misses: list[str] | None = None) -> Score:
    """Score ``cases`` (``{q, expected, fact?}`` dicts); failed questions go to ``misses`` if given."""
    result = Score()
    for case in cases:
        question, expected, fact = str(case["q"]), case.get("expected"), case.get("fact")
        answer = index.answer(question)
        got = answer.hit.section_id if answer.hit is not None else None
        if expected is None:
            result.off_topic += 1
            result.off_topic_escalated += not answer.confident
            if answer.confident and misses is not None:
                misses.append(f"OFF answered {got}: {question}")
            continue
        result.on_topic += 1
        if not answer.confident:
            result.escalated += 1
            if misses is not None:
                misses.append(f"ESC (top {got}): {question}")
            continue
        if got != expected:
            if misses is not None:
                misses.append(f"WRONG {got} != {expected}: {question}")
            continue
        result.right_section += 1
        excerpt = answer.excerpt()
        if fact is None or str(fact).lower() in excerpt.lower():
            result.right += 1
        elif misses is not None:
            misses.append(f"FACT {fact!r} not in {excerpt!r}: {question}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_file", type=Path)
    parser.add_argument("--key", default="questions", help="YAML list to score (default: questions)")
    parser.add_argument("--handbook", type=Path, default=ROOT / "policies")
    parser.add_argument("--misses", action="store_true", help="list failed questions (not on the blind set)")
    parser.add_argument("--lexical", action="store_true", help="the lexical-only engine (no embeddings)")
    parser.add_argument("--no-synonyms", action="store_true", help="without the synonym layer")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "policy-cache")
    args = parser.parse_args(argv)
    if args.misses and args.eval_file.name == BLIND:
        print(f"{BLIND} is blind: aggregates only", file=sys.stderr)
        return 2
    cases = (yaml.safe_load(args.eval_file.read_text(encoding="utf-8")) or {}).get(args.key) or []
    sections, errors = load_handbook(args.handbook)
    if errors:
        print("handbook problems: " + "; ".join(map(str, errors)), file=sys.stderr)
    config = IndexConfig(use_synonyms=not args.no_synonyms)
    embedder = None if args.lexical else Embedder(args.cache_dir)
    index = PolicyIndex.build(sections, config=config, embedder=embedder)
    misses: list[str] | None = [] if args.misses else None
    result = score(index, cases, misses)
    engine = "hybrid" if index.hybrid else "lexical"
    print(f"{args.eval_file.name} [{args.key}] {engine}{', no synonyms' if args.no_synonyms else ''}")
    for line in result.lines():
        print("  " + line)
    for miss in misses or ():
        print("  - " + miss)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
