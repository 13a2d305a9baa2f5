"""Which synonym phrases still change answers of the hybrid engine? Prints the table to keep.

Run from the repo root::

    .venv/bin/python -m bench.policy_synonyms > /tmp/kept.txt

On the development sets (``tests/policy_eval.yaml``, all keys, ``tests/policy_blind_eval.yaml``,
``tests/policy_blind2_eval.yaml``, ``tests/policy_blind3_eval.yaml`` and ``tests/policy_dev4_eval.yaml``;
never the blind set
``policy_blind5_eval.yaml``), a question's outcome is
right or wrong as in :mod:`bench.policy_accuracy`.
Phrases are tried one at a time, greedily: a phrase that matches no development question and no
section heading or ``asks:`` variant cannot change an answer and is dropped; any other phrase is
dropped when removing it (from the table as it stands) changes no outcome or only turns wrong ones
right. The kept groups are printed in the format of ``DEFAULT_SYNONYMS_TEXT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from bench.policy_accuracy import score
from domain.policy import IndexConfig, PolicyIndex, SynonymTable, load_handbook
from domain.policy.semantic import Embedder
from domain.policy.synonyms import DEFAULT_SYNONYMS, stem_words, tokenize

ROOT = Path(__file__).resolve().parents[1]
DEV_SETS = (
    (ROOT / "tests" / "policy_eval.yaml", ("questions", "holdout", "holdout2")),
    (ROOT / "tests" / "policy_blind_eval.yaml", ("questions",)),
    (ROOT / "tests" / "policy_blind2_eval.yaml", ("questions",)),
    (ROOT / "tests" / "policy_blind3_eval.yaml", ("questions",)),
    (ROOT / "tests" / "policy_dev4_eval.yaml", ("questions",)),
)


def _matches(phrase: str, text: str) -> bool:
    words = tokenize(text)
    return bool(SynonymTable({"x": [phrase]}).match(stem_words(words), words))


def main() -> int:
    cases: list[dict[str, object]] = []
    for path, keys in DEV_SETS:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key in keys:
            cases.extend(data.get(key) or ())
    sections, _ = load_handbook(ROOT / "policies")
    embedder = Embedder(ROOT / "data" / "policy-cache")
    handbook_texts = [t for s in sections for t in (s.heading, *s.variants)]
    groups = {canonical: list(phrases) for canonical, phrases in DEFAULT_SYNONYMS.items()}

    def outcomes(table: dict[str, list[str]], subset: list[dict[str, object]]) -> list[bool]:
        index = PolicyIndex.build(
            sections, config=IndexConfig(), synonyms=SynonymTable(table), embedder=embedder
        )
        results = [score(index, [case]) for case in subset]
        return [r.right + r.off_topic_escalated == 1 for r in results]

    total_before = sum(outcomes(groups, cases))
    dropped = kept = 0
    for canonical in list(groups):
        for phrase in list(groups[canonical]):
            touched = [c for c in cases if _matches(phrase, str(c["q"]))]
            in_handbook = any(_matches(phrase, t) for t in handbook_texts)
            without = {k: [p for p in v if not (k == canonical and p == phrase)] for k, v in groups.items()}
            if not touched and not in_handbook:
                groups = without
                dropped += 1
                continue
            subset = cases if in_handbook else touched
            before, after = outcomes(groups, subset), outcomes(without, subset)
            if all(a >= b for a, b in zip(after, before, strict=True)):
                groups = without
                dropped += 1
            else:
                kept += 1
        if not groups[canonical]:
            del groups[canonical]
    total_after = sum(outcomes(groups, cases))
    print(f"# dev outcomes right: {total_before} -> {total_after} of {len(cases)}; ", end="", file=sys.stderr)
    print(f"phrases kept {kept}, dropped {dropped}", file=sys.stderr)
    for canonical, phrases in groups.items():
        print(f"{canonical}: " + " | ".join(phrases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
