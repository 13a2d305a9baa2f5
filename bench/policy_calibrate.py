"""Fit the hybrid confidence (``HYBRID_WEIGHTS``, ``HYBRID_THRESHOLD`` in domain/policy/index.py) on
the development sets, with leave-one-set-out cross-validation.

Run from the repo root::

    .venv/bin/python -m bench.policy_calibrate

Each question's best hit gives its :class:`~domain.policy.index.HybridSignals`; the label is 1 when
answering with it would be right (on-topic, right section, the ``fact`` in the excerpt) and 0
otherwise (a wrong section, a missed fact, an off-topic question). A logistic regression (L2, Newton)
fits the weights; the threshold is the lowest that escalates at least ``--off-topic`` of the fitting
questions' off-topic ones. For each development set, the fit on the *other* sets is scored on it
(the cross-validated figure), then the fit on all of them is printed: the constants to ship.
The blind set (``bench.policy_accuracy.BLIND``) is never read.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench.policy_accuracy import BLIND
from domain.policy import IndexConfig, PolicyIndex, load_handbook
from domain.policy.semantic import Embedder

ROOT = Path(__file__).resolve().parents[1]
#: (label, file, YAML key) of every development set.
DEV_SETS = (
    ("eval", "tests/policy_eval.yaml", "questions"),
    ("holdout", "tests/policy_eval.yaml", "holdout"),
    ("holdout2", "tests/policy_eval.yaml", "holdout2"),
    ("blind1", "tests/policy_blind_eval.yaml", "questions"),
    ("blind2", "tests/policy_blind2_eval.yaml", "questions"),
    ("blind3", "tests/policy_blind3_eval.yaml", "questions"),
    ("dev4", "tests/policy_dev4_eval.yaml", "questions"),
)


@dataclass
class Row:
    group: str
    on_topic: bool
    right: bool  # answering with the best hit would be right
    signals: tuple[float, ...]


def collect(index: PolicyIndex) -> list[Row]:
    rows: list[Row] = []
    for group, file, key in DEV_SETS:
        assert Path(file).name != BLIND
        for case in yaml.safe_load((ROOT / file).read_text(encoding="utf-8"))[key]:
            answer = index.answer(str(case["q"]))
            hit = answer.hit
            if hit is None or hit.signals is None:
                signals: tuple[float, ...] = (0.0, 0.0, -1.0, -1.0)
                right = False
            else:
                signals = hit.signals.vector()
                fact = case.get("fact")
                right = case.get("expected") is not None and hit.section_id == case["expected"]
                right = right and (fact is None or str(fact).lower() in answer.excerpt().lower())
            rows.append(Row(group, case.get("expected") is not None, right, signals))
    return rows


def fit(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Logistic regression weights (bias first) by Newton's method with an L2 penalty."""
    a = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def confidence(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(w[0] + x @ w[1:])))


def threshold_for(conf: np.ndarray, rows: list[Row], off_topic_rate: float) -> float:
    """The lowest threshold (to 0.01) escalating ≥ ``off_topic_rate`` of the off-topic rows."""
    off = np.sort(np.array([c for c, r in zip(conf, rows, strict=True) if not r.on_topic]))
    if not len(off):
        return 0.5
    allowed = int(np.floor((1 - off_topic_rate) * len(off)))  # off-topic questions that may pass
    cut = off[len(off) - allowed - 1]  # must be above this one
    return float(np.ceil((cut + 1e-9) * 100) / 100)


def score(conf: np.ndarray, rows: list[Row], threshold: float) -> tuple[int, int, int, int]:
    on = [r for r in rows if r.on_topic]
    right = sum(c >= threshold and r.right for c, r in zip(conf, rows, strict=True) if r.on_topic)
    off_esc = sum(c < threshold for c, r in zip(conf, rows, strict=True) if not r.on_topic)
    return right, len(on), off_esc, len(rows) - len(on)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--off-topic", type=float, default=0.97, help="off-topic escalation the threshold keeps"
    )
    parser.add_argument("--l2", type=float, default=1.0)
    parser.add_argument("--features", default="0,1,2,3", help="indices of HybridSignals.vector() to use")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "policy-cache")
    args = parser.parse_args(argv)
    use = [int(i) for i in args.features.split(",")]
    sections, _ = load_handbook(ROOT / "policies")
    index = PolicyIndex.build(sections, config=IndexConfig(), embedder=Embedder(args.cache_dir))
    rows = collect(index)
    x = np.array([[r.signals[i] for i in use] for r in rows])
    y = np.array([float(r.right) for r in rows])
    ceiling = sum(r.right for r in rows if r.on_topic), sum(r.on_topic for r in rows)
    print(f"top hit right (any confidence): {ceiling[0]}/{ceiling[1]}")
    totals = np.zeros(4, dtype=int)
    for group, *_ in DEV_SETS:
        train = np.array([r.group != group for r in rows])
        w = fit(x[train], y[train], args.l2)
        train_rows = [r for r, t in zip(rows, train, strict=True) if t]
        t = threshold_for(confidence(w, x[train]), train_rows, args.off_topic)
        test_rows = [r for r, t_ in zip(rows, train, strict=True) if not t_]
        result = score(confidence(w, x[~train]), test_rows, t)
        totals += result
        print(
            f"held out {group:9s} (fit on the others, threshold {t:.2f}): on-topic right "
            f"{result[0] / result[1]:6.1%} ({result[0]}/{result[1]}), off-topic escalated "
            f"{result[2] / max(result[3], 1):6.1%} ({result[2]}/{result[3]})"
        )
    print(
        f"cross-validated total: on-topic right {totals[0] / totals[1]:6.1%}, "
        f"off-topic escalated {totals[2] / totals[3]:6.1%}"
    )
    w = fit(x, y, args.l2)
    t = threshold_for(confidence(w, x), rows, args.off_topic)
    result = score(confidence(w, x), rows, t)
    weights = [0.0] * len(rows[0].signals)
    for i, value in zip(use, w[1:], strict=True):
        weights[i] = float(value)
    print(
        f"fit on all: HYBRID_WEIGHTS = {tuple(round(v, 2) for v in [w[0], *weights])}, HYBRID_THRESHOLD = {t:.2f}"
    )
    print(
        f"  in-sample: on-topic right {result[0] / result[1]:6.1%}, off-topic escalated {result[2] / result[3]:6.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
