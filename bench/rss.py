"""Resident memory of the bot processes and of the shared policy encoder: idle, after load, after
handbook questions.

    .venv/bin/python -m bench.rss [--requests 1500] [--backend sqlite|postgresql]

Three runs, each against real `bot.py` processes (sandbox.bot_process.BotProcess, HTTP mode) and
the fake Slack, VmRSS read from /proc:

1. `POLICY_ENCODER=process` (each bot loads the model itself: the old way, the baseline): one bot,
   idle 5 s, then after bench.throughput's `/tasks` + `/tasks mine` load (60 members, 16 at a time),
   then after five `/policy` questions (the first that needs a new embedding loads the encoder).
2. `POLICY_ENCODER=shared` (the default): the same, and the shared encoder process apart, which the
   first question starts.
3. Three bots, shared, on PostgreSQL (several processes need it): the same load spread over them,
   five questions to each, then the total of the three bots and the encoder, beside three times
   run 1's figure after questions.

Every run uses one cache directory (data/bench-rss-cache: the ONNX graph and the handbook's vectors,
filled before the runs), so no bot embeds the handbook at start-up; the encoder this bench started is
stopped between runs and at the end. Also printed: what the encoder adds to a fresh interpreter, and
the bot's largest mappings (from /proc/PID/smaps) after the questions.
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import throughput

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "data" / "bench-rss-cache"
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
# the handbook's vectors into the bench's cache, in a process of its own (it loads the model)
_WARM_CACHE = """
import sys
from pathlib import Path
from domain.policy import PolicyIndex, load_handbook
from domain.policy.semantic import Embedder
sections, _ = load_handbook(Path("policies"))
assert PolicyIndex.build(sections, embedder=Embedder(Path(sys.argv[1]))).hybrid
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
    """Handbook questions through `/policy`: the first one needs a new embedding (the handbook's
    own vectors come from the on-disk cache)."""
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.driver import SlackDriver
    from sandbox.harness import reply_to

    driver = SlackDriver(url, SIGNING_SECRET, fake=fake)
    for member, question in zip(members, QUESTIONS, strict=False):
        response_url = fake.new_response_url()
        reply_to(
            fake, driver.command(member, "/policy", question, response_url=response_url), response_url, 120
        )


def _python(script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, str(CACHE_DIR)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


def encoder_alone() -> tuple[float, float, str]:
    before, after, runtime = _python(_ENCODER_ALONE).split()[-3:]
    return float(before), float(after), runtime


def stop_encoder() -> None:
    """Stop the shared encoder this bench started (SIGTERM: it removes its socket)."""
    from domain.policy.shared_encoder import running_pid

    pid = running_pid(CACHE_DIR)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while running_pid(CACHE_DIR) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def encoder_mb() -> tuple[float, float]:
    from domain.policy.shared_encoder import running_pid

    pid = running_pid(CACHE_DIR)
    assert pid is not None, "a /policy question started the shared encoder"
    return status_mb(pid, "VmRSS"), status_mb(pid, "VmHWM")


@contextmanager
def bots(
    backend: str, encoder: str, processes: int, members_n: int = 60
) -> Iterator[tuple[Any, Any, list[Any], list[str]]]:
    from sandbox.bot_process import BotProcess
    from sandbox.fake_slack import FakeSlack
    from sandbox.scratch_db import scratch_database

    env = {**throughput.BOT_ENV, "POLICY_ENCODER": encoder, "POLICY_CACHE_DIR": str(CACHE_DIR)}
    with (
        multiprocessing.get_context("spawn").Pool(1) as pool,
        FakeSlack() as fake,
        scratch_database(backend) as url,
    ):
        members = [u["id"] for u in fake.add_users(members_n, tz="Europe/Lisbon")]
        started = [BotProcess(fake, url, env=env).start() for _ in range(processes)]
        try:
            yield pool, fake, started, members
        finally:
            for bot in started:
                bot.stop()
            stop_encoder()


def one_bot(backend: str, encoder: str, requests: int) -> dict[str, Any]:
    with bots(backend, encoder, 1) as (pool, fake, (bot,), members):
        time.sleep(IDLE_SETTLE_S)
        figures: dict[str, Any] = {"idle": status_mb(bot.pid, "VmRSS")}
        throughput.seed(fake, bot.url, members)
        throughput.run_load(pool, fake, [bot.url], members, requests, 16)
        figures["loaded"] = status_mb(bot.pid, "VmRSS")
        ask_questions(fake, bot.url, members)
        figures["asked"], figures["peak"] = status_mb(bot.pid, "VmRSS"), status_mb(bot.pid, "VmHWM")
        figures["mappings"] = largest_mappings(bot.pid)
        if encoder == "shared":
            figures["encoder"], figures["encoder_peak"] = encoder_mb()
    return figures


def three_bots(requests: int) -> dict[str, Any]:
    with bots("postgresql", "shared", 3) as (pool, fake, started, members):
        time.sleep(IDLE_SETTLE_S)
        idle = [status_mb(b.pid, "VmRSS") for b in started]
        throughput.seed(fake, started[0].url, members)
        throughput.run_load(pool, fake, [b.url for b in started], members, requests, 16)
        for n, bot in enumerate(started):
            ask_questions(fake, bot.url, members[5 * n :])
        asked = [status_mb(b.pid, "VmRSS") for b in started]
        peaks = [status_mb(b.pid, "VmHWM") for b in started]
        encoder, encoder_peak = encoder_mb()
    return {"idle": idle, "asked": asked, "peaks": peaks, "encoder": encoder, "encoder_peak": encoder_peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    stop_encoder()
    _python(_WARM_CACHE)
    loads = [os.getloadavg()[0]]
    old = one_bot(args.backend, "process", args.requests)
    loads.append(os.getloadavg()[0])
    new = one_bot(args.backend, "shared", args.requests)
    loads.append(os.getloadavg()[0])
    cluster = three_bots(args.requests)
    loads.append(os.getloadavg()[0])
    before, after, runtime = encoder_alone()

    def row(name: str, f: dict[str, Any]) -> str:
        return (
            f"  {name}: bot idle {f['idle']:.0f} MB, after {args.requests} requests {f['loaded']:.0f} MB, "
            f"after {len(QUESTIONS)} /policy questions {f['asked']:.0f} MB (peak {f['peak']:.0f})"
        )

    total = sum(cluster["asked"]) + cluster["encoder"]
    print(
        f"rss ({args.backend}; load average {' -> '.join(f'{x:.1f}' for x in loads)}; target < 150 MB each)"
    )
    print(row("POLICY_ENCODER=process (baseline)", old))
    print(
        row("POLICY_ENCODER=shared", new)
        + f"; the encoder process {new['encoder']:.0f} MB (peak {new['encoder_peak']:.0f})"
    )
    print(
        f"  3 bots, shared, PostgreSQL: idle {'/'.join(f'{x:.0f}' for x in cluster['idle'])} MB, after "
        f"{args.requests} requests and {len(QUESTIONS)} questions each "
        f"{'/'.join(f'{x:.0f}' for x in cluster['asked'])} MB (peaks {'/'.join(f'{x:.0f}' for x in cluster['peaks'])}) "
        f"+ encoder {cluster['encoder']:.0f} MB (peak {cluster['encoder_peak']:.0f}) = {total:.0f} MB "
        f"vs 3 x {old['asked']:.0f} = {3 * old['asked']:.0f} MB in-process ({total / (3 * old['asked']):.2f}x)"
    )
    print(
        f"  the encoder ({runtime}) alone adds {after - before:.0f} MB to a fresh interpreter ({before:.0f} -> {after:.0f} MB)"
    )
    for name, f in (("process", old), ("shared", new)):
        print(
            f"  largest mappings of the bot ({name}, after questions, MB): "
            + ", ".join(f"{n} {mb:.0f}" for n, mb in f["mappings"])
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
