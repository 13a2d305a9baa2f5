"""Where a request's CPU goes: py-spy on a real `bot.py` under bench.throughput's load.

    .venv/bin/pip install py-spy      # for profiling only: not a dependency of the bot
    .venv/bin/python -m bench.profile_requests [--out /tmp/profile] [--backend sqlite|postgresql]

Starts `bot.py` (SQLite by default), seeds and warms it as bench.throughput does, then records it
with `py-spy record --gil --format raw` (only the thread holding the GIL is sampled: where Python
spends the CPU) during 1,500 `/tasks` + `/tasks mine` commands, and again during one Claim click per
member (8 at a time, each on a card of a task they do not hold). The collapsed stacks are kept in
OUT/commands.txt and OUT/clicks.txt; one line is printed: the samples and the top frames by
inclusive share of the commands' samples.
"""

from __future__ import annotations

import argparse
import collections
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import throughput

SHOWN = 12
OUR_PACKAGES = ("server", "handlers", "kit", "jobs", "views", "domain", "db", "core")


def record(pid: int, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", "200", "--gil", "--format", "raw", "--nonblocking"]
    process = subprocess.Popen([*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # py-spy attaches
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    process.communicate(timeout=60)


def inclusive(path: Path) -> tuple[int, list[tuple[str, float]]]:
    """Total samples, and each frame's share of the samples whose stack holds it."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        total += int(n)
        for frame in {
            re.sub(r" \((?:.*/)?([^/]+/[^/]+?)(?::\d+)?\)$", r" (\1)", f) for f in stack.split(";")
        }:
            counts[frame] += int(n)
    return total, [(frame, n / total * 100) for frame, n in counts.most_common()]


def click_all(fake: Any, url: str, members: list[str]) -> None:
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.driver import SlackDriver

    driver = SlackDriver(url, SIGNING_SECRET, fake=fake)
    cards = [c for c in fake.calls_to("chat.postMessage") if c.params.get("channel") == throughput.CHANNEL]
    clicks = []
    for m, member in enumerate(members):  # members hold cards m and m+1 (bench.throughput.seed)
        message = dict(
            fake.find_message(throughput.CHANNEL, cards[(m + 7) % len(cards)].response["ts"]) or {}
        )
        clicks.append((member, message["blocks"][-2]["accessory"]["value"], message))

    def send(chunk: list[tuple[str, str, dict[str, Any]]]) -> None:
        for member, value, message in chunk:
            driver.click(
                member,
                "task_claim",
                value,
                channel_id=throughput.CHANNEL,
                message_ts=message["ts"],
                message=message,
            )

    threads = [threading.Thread(target=send, args=(clicks[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(3)  # the decisions follow the acks (the door holds them back while clicks arrive)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/crewcall-profile"))
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)

    with throughput.one_bot(args.backend) as (pool, fake, bot, members):
        throughput.seed(fake, bot.url, members)
        throughput.run_load(pool, fake, [bot.url], members, 240, 16)
        spy = record(bot.pid, args.out / "commands.txt")
        run = throughput.run_load(pool, fake, [bot.url], members, 1500, 16)
        stop(spy)
        spy = record(bot.pid, args.out / "clicks.txt")
        click_all(fake, bot.url, members)
        stop(spy)
    total, frames = inclusive(args.out / "commands.txt")
    # crewcall's own frames (the rest of each stack is in the files)
    ours = [(f, pct) for f, pct in frames if re.search(r"\((?:" + "|".join(OUR_PACKAGES) + r")/", f)]
    top = "; ".join(f"{pct:.0f}% {frame}" for frame, pct in ours[:SHOWN])
    clicks, _ = inclusive(args.out / "clicks.txt")
    print(
        f"profile ({args.backend}, {run.per_s:.0f} req/s): 1,500 commands {total} GIL samples at 200 Hz, "
        f"60 clicks {clicks}; stacks in {args.out}; top frames: {top}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
