"""Resident memory of one bot process: idle, then after bench.throughput's load.

    .venv/bin/python -m bench.rss [--requests 1500] [--backend sqlite|postgresql]

Starts `bot.py` (sandbox.bot_process.BotProcess, HTTP mode) against the fake Slack, reads VmRSS
from /proc once it has been idle for 5 s, seeds the store and sends the throughput bench's
`/tasks` + `/tasks mine` load (60 members, 16 at a time), then reads VmRSS again and the peak
(VmHWM). The policy embedding model's share is measured apart: a fresh interpreter's RSS before
and after loading the encoder (onnxruntime, as the bot loads it at start-up) and embedding one
question. Last, five `/policy` questions are asked (the bot loads the encoder on the first question
that needs a new embedding) and the RSS read again. The process's largest mappings (before the questions) (from /proc/PID/smaps) are listed too. One line is printed.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import throughput

ROOT = Path(__file__).resolve().parents[1]
IDLE_SETTLE_S = 5
_ENCODER_ALONE = """
import sys
from pathlib import Path
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
before = rss()
from domain.policy.embedding import load_encoder
encoder = load_encoder(Path(sys.argv[1]))
if encoder is not None:
    encoder.encode(["Can I use ChatGPT to draft a contract summary?"])
print(f"{before:.0f} {rss():.0f} {encoder.runtime if encoder else 'none'}")
"""


def status_mb(pid: int, field: str) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def largest_mappings(pid: int, top: int = 4) -> list[tuple[str, float]]:
    """Resident MB by what is mapped (a file's name, or [anon] for heap and arenas)."""
    by_name: collections.Counter[str] = collections.Counter()
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            name = os.path.basename(parts[5]) if len(parts) >= 6 and parts[5].startswith("/") else "[anon]"
        elif parts[0] == "Rss:":
            by_name[name] += int(parts[1])  # kB
    return [(name, kb / 1024) for name, kb in by_name.most_common(top)]


QUESTIONS = (
    "when is payday?",
    "can I use ChatGPT to draft a summary?",
    "what happens if I miss a deadline?",
    "how do I report my hours?",
    "may I subcontract a task to a friend?",
)


def ask_questions(fake: Any, url: str, members: list[str]) -> None:
    """Handbook questions through `/policy`: the first one that needs a new embedding loads the
    encoder (the handbook's own vectors come from the on-disk cache)."""
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.driver import SlackDriver

    driver = SlackDriver(url, SIGNING_SECRET, fake=fake)
    urls = [fake.new_response_url() for _ in QUESTIONS]
    for member, question, response_url in zip(members, QUESTIONS, urls, strict=False):
        driver.command(member, "/policy", question, response_url=response_url)
    wanted = set(urls)
    fake.wait_for(
        "response_url", count=len(urls), timeout=120, predicate=lambda c: c.params.get("_url") in wanted
    )


def encoder_alone(cache_dir: Path) -> tuple[float, float, str]:
    done = subprocess.run(
        [sys.executable, "-c", _ENCODER_ALONE, str(cache_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    before, after, runtime = done.stdout.split()[-3:]
    return float(before), float(after), runtime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with throughput.one_bot(args.backend) as (pool, fake, bot, members):
        time.sleep(IDLE_SETTLE_S)
        idle = status_mb(bot.pid, "VmRSS")
        throughput.seed(fake, bot.url, members)
        throughput.run_load(pool, fake, [bot.url], members, args.requests, 16)
        loaded, peak = status_mb(bot.pid, "VmRSS"), status_mb(bot.pid, "VmHWM")
        mappings = largest_mappings(bot.pid)
        ask_questions(fake, bot.url, members)
        asked, asked_peak = status_mb(bot.pid, "VmRSS"), status_mb(bot.pid, "VmHWM")
    before, after, runtime = encoder_alone(ROOT / "data" / "policy-cache")
    shown = ", ".join(f"{name} {mb:.0f}" for name, mb in mappings)
    print(
        f"rss ({args.backend}, one bot.py): idle {idle:.0f} MB, after {args.requests} requests {loaded:.0f} MB, "
        f"peak {peak:.0f} MB (target < 150); after {len(QUESTIONS)} /policy questions {asked:.0f} MB, "
        f"peak {asked_peak:.0f} MB; the policy encoder ({runtime}) alone adds {after - before:.0f} MB "
        f"to a fresh interpreter ({before:.0f} -> {after:.0f} MB); largest mappings (MB): {shown}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
