"""Benchmark a whole `/policy` question through the HTTP door, on a 1,000-section handbook.

Run from the repo root::

    .venv/bin/python -m bench.policy_desk            # 1,000 synthetic sections (+ the real 17), 400 questions, 2 rounds

The bot runs for real (create_app, waitress, SQLite in a temp dir) against the fake Slack; each question
is a signed slash command, timed from sending it to the fake receiving the answer on the command's
response_url. That includes the signature check, the ack, the revision check against the database,
the engine, recording the question (one transaction) and the reply. Baselines, in the same run:
`PolicyIndex.answer` alone on the same questions and handbook, and `/crew me` through the same door
(a command that does no policy work), so the difference is what the policy wiring adds. The
`/policy` questions are asked with the model in the bot (`POLICY_ENCODER=process`) and through the
shared encoder process (`POLICY_ENCODER=shared`, one Unix-socket round trip per question), the two
alternated `--rounds` times; the encoder this bench started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

from bench.policy import random_questions, synth_handbook
from domain.policy import PolicyIndex, load_eval_cases, load_handbook
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]
#: The bots' POLICY_CACHE_DIR (the synthetic handbook's vectors are kept there between runs).
CACHE_DIR = ROOT / "data" / "policy-cache"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float], baseline: float | None = None) -> str:
    p99 = percentile(values, 99)
    ratio = f"{p99 / baseline:.1f}×" if baseline else "1.0×"
    return (
        f"| {name} | {statistics.median(values):.2f} | {percentile(values, 95):.2f} | {p99:.2f} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2, help="passes of the questions per encoder setting")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="policy-desk-bench-") as tmp:
        handbook = Path(tmp) / "handbook"
        handbook.mkdir()
        synth_handbook(handbook, args.sections, args.seed)
        for path in (ROOT / "policies").glob("*.md"):
            shutil.copy(path, handbook / path.name)
        sections, errors = load_handbook(handbook)
        assert not errors, errors[:3]
        index = PolicyIndex.build(sections)

        rng = random.Random(args.seed)
        asked = [c.question for c in load_eval_cases(ROOT / "tests" / "policy_eval.yaml")]
        asked += random_questions(sections, args.questions, args.seed)
        rng.shuffle(asked)
        asked = asked[: args.questions]

        engine_ms = []
        for question in asked:
            start = time.perf_counter()
            index.answer(question)
            engine_ms.append((time.perf_counter() - start) * 1000)

        door_ms: dict[str, list[float]] = {"process": [], "shared": []}
        crew_ms: list[float] = []
        escalated = 0
        loads = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            for encoder in ("process", "shared"):  # alternated: the machine's load moves
                env = {
                    "POLICY_DIR": str(handbook),
                    "LEADS_CHANNEL": "C0LEADS",
                    "HTTP_THREADS": "4",
                    "POLICY_ENCODER": encoder,
                    "POLICY_CACHE_DIR": str(CACHE_DIR),
                }
                with (
                    FakeSlack() as fake,
                    BotHarness(f"sqlite:///{tmp}/bench-{encoder}-{round_}.db", fake=fake, env=env) as bot,
                ):
                    fake.add_user("U1")
                    bot.command(
                        "U1", "/policy", "when is payday?"
                    )  # warm-up: member row, connections, encoder
                    if round_ == 0 and encoder == "process":
                        for _ in asked:
                            start = time.perf_counter()
                            bot.command("U1", "/crew", "me")
                            crew_ms.append((time.perf_counter() - start) * 1000)
                    for question in asked:
                        start = time.perf_counter()
                        reply = bot.command("U1", "/policy", question)
                        door_ms[encoder].append((time.perf_counter() - start) * 1000)
                        escalated += "asked the leads" in reply.text
                loads.append(os.getloadavg()[0])
        stop_encoder()

    print(
        f"# /policy through the HTTP door — python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{len(sections)} sections, {len(asked)} questions x {args.rounds} rounds per encoder "
        f"({escalated} escalated), load average {' -> '.join(f'{x:.1f}' for x in loads)}"
    )
    print()
    print("| path | p50 ms | p95 ms | p99 ms | p99 vs engine |")
    print("|---|---|---|---|---|")
    baseline = percentile(engine_ms, 99)
    print(row("engine `PolicyIndex.answer` alone (baseline)", engine_ms))
    print(row("`/crew me` → reply on the response_url (the door alone)", crew_ms, baseline))
    print(row("`/policy` → answer, POLICY_ENCODER=process (model in the bot)", door_ms["process"], baseline))
    print(row("`/policy` → answer, POLICY_ENCODER=shared (encoder process)", door_ms["shared"], baseline))


def stop_encoder() -> None:
    """Stop the shared encoder this bench started (SIGTERM: it removes its socket)."""
    from domain.policy.shared_encoder import running_pid

    pid = running_pid(CACHE_DIR)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
