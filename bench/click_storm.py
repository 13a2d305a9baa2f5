"""Click storm, time to the answer: 300 members press Claim on one task's card at once, and each
waits for the bot to tell them whether they won the slot or it is full.

    .venv/bin/python -m bench.click_storm [--clicks 300] [--slots 5] [--slack-latency 0.05]
        [--setups sqlite:1,postgresql:1,postgresql:3] [--env KEY=VALUE ...]

Each setup is a backend and a number of real bot processes (sandbox.bot_process.BotProcess: `bot.py`
in its own process, HTTP mode) sharing one fresh database, behind a round-robin "load balancer" (click
i goes to process i mod N). The fake Slack runs in this process and answers every Web API call and
response_url post after `--slack-latency` seconds (Slack's own latency, as seen from a server near it).
The members have used the bot before (each ran `/tasks mine` once), and each process has warmed up.

A lead posts a task with `--slots` slots; then `--clicks` distinct members click its Claim button
together (signed block_actions requests sent from a child process by threads released by a barrier,
as in bench/claim_storm.py). Per click:
- ack: from sending the click to the bot's HTTP 200 (what Slack waits for, 3 s at most);
- answer: from sending the click to the moment the fake Slack answers the bot's reply to that
  click's response_url ("… is yours!" or "… is full"), which is when the member would see it.

Prints one line: per setup, ack p50/p99 and answer p50/p99 in ms, the bot processes' CPU time per
click (from the first click to the last answer: acknowledging and deciding), and whether exactly
`--slots` members won and the card shows Full; the machine's cores and load average at the end. Targets
(issue 14): ack p99 < 250 ms, answer p99 < 1,000 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.claim_storm import CHANNEL, fire
from bench.throughput import context_switches, cpu_seconds

ACK_TARGET_MS, ANSWER_TARGET_MS = 250, 1000


@dataclass
class Result:
    setup: str
    acks: list[float]
    answers: list[float]
    winners: int
    card_full: bool
    cpu_per_click_ms: float  # the bot processes' CPU time from the first click to the last answer
    switches_per_click: float  # their threads' context switches over the same time

    @staticmethod
    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    def summary(self, slots: int) -> str:
        correct = "exact" if self.winners == slots and self.card_full else f"WRONG ({self.winners} won)"
        return (
            f"{self.setup}: ack p50 {self.pct(self.acks, 0.5):.0f} p99 {self.pct(self.acks, 0.99):.0f} ms, "
            f"answer p50 {self.pct(self.answers, 0.5):.0f} p99 {self.pct(self.answers, 0.99):.0f} ms, "
            f"bot CPU {self.cpu_per_click_ms:.1f} ms/click, {self.switches_per_click:.0f} context switches/click, "
            f"{correct}"
        )

    def met(self) -> bool:
        return self.pct(self.acks, 0.99) < ACK_TARGET_MS and self.pct(self.answers, 0.99) < ANSWER_TARGET_MS


def post_task(fake: Any, driver: Any, slots: int) -> tuple[dict[str, Any], str]:
    """The lead posts a task; its card as Slack shows it, and the task's id (the Claim value)."""
    before = len(fake.calls_to("chat.postMessage"))
    driver.command(
        "ULEAD",
        "/tasks",
        f"new Review 40 contract summaries slots={slots} rate=120 hours=6 channel={CHANNEL}",
    )
    posted = fake.wait_for("chat.postMessage", count=before + 1, timeout=30, predicate=lambda c: True)[before]
    message = dict(fake.find_message(CHANNEL, posted.response["ts"]) or {})
    return message, str(message["blocks"][-2]["accessory"]["value"])


def warm_up(fake: Any, drivers: list[Any], users: list[str]) -> None:
    """Each user runs `/tasks mine` once (the bot meets them and stores their profile), spread over
    the processes; waits for every answer."""
    from sandbox.harness import reply_to

    def run(i: int) -> None:
        url = fake.new_response_url()
        reply_to(
            fake, drivers[i % len(drivers)].command(users[i], "/tasks", "mine", response_url=url), url, 120
        )

    with ThreadPoolExecutor(8) as threads:
        list(threads.map(run, range(len(users))))


def run_setup(backend: str, processes: int, args: argparse.Namespace, pool: Any) -> Result:
    from sandbox.bot_process import SIGNING_SECRET, BotProcess
    from sandbox.fake_slack import FakeSlack
    from sandbox.scratch_db import scratch_database

    with scratch_database(backend) as url, FakeSlack() as fake:
        fake.add_user("ULEAD", tz="UTC")
        users = [u["id"] for u in fake.add_users(args.clicks, tz="Europe/Lisbon")]
        bots: list[BotProcess] = []
        try:
            for _ in range(processes):  # one after the other: the first one migrates the database
                bots.append(BotProcess(fake, url, env={"LOG_LEVEL": "WARNING", **args.env}).start())
            drivers = [bot.driver for bot in bots]
            drivers[0].command("UADMIN", "/crew", "lead <@ULEAD>")
            warm_up(fake, drivers, users)
            fake.latency = args.slack_latency
            message, task_id = post_task(fake, drivers[0], args.slots)
            urls = [fake.new_response_url() for _ in users]
            cpu_before = sum(cpu_seconds(bot.pid) for bot in bots)
            switched = sum(context_switches(bot.pid) for bot in bots)
            acks, sent = pool.apply(
                fire, ([b.url for b in bots], SIGNING_SECRET, users, "task_claim", task_id, message, urls)
            )
            wanted = set(urls)
            replies = fake.wait_for(
                "response_url",
                count=len(users),
                timeout=120,
                predicate=lambda c: c.params.get("_url") in wanted,
            )
            cpu = sum(cpu_seconds(bot.pid) for bot in bots) - cpu_before
            switches = sum(context_switches(bot.pid) for bot in bots) - switched
            sent_at = dict(zip(urls, sent, strict=True))
            answers = [c.ts - sent_at[c.params["_url"]] for c in replies]
            winners = sum("is yours" in c.params.get("text", "") for c in replies)
            time.sleep(1.0)  # the last coalesced card redraw
            final = json.dumps((fake.find_message(CHANNEL, message["ts"]) or {}).get("blocks"))
            card_full = "*Full*" in final and "task_claim" not in final
        finally:
            for bot in bots:
                bot.stop()
        label = f"{backend} x{processes}"
        print(f"  {label}: done", file=sys.stderr)
        return Result(
            label, acks, answers, winners, card_full, cpu / len(users) * 1000, switches / len(users)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=300)
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument(
        "--slack-latency", type=float, default=0.05, help="seconds the fake Slack takes per call"
    )
    parser.add_argument(
        "--setups", default="sqlite:1,postgresql:1,postgresql:3", help="backend:processes,..."
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every bot process")
    args = parser.parse_args()
    args.env = dict(pair.split("=", 1) for pair in args.env)
    logging.basicConfig(level=logging.ERROR)

    results: list[Result] = []
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for setup in args.setups.split(","):
            backend, _, processes = setup.partition(":")
            results.append(run_setup(backend, int(processes or 1), args, pool))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"click storm ({args.clicks} clicks, {args.slots} slots, Slack latency {args.slack_latency * 1000:.0f} ms; "
        + "; ".join(r.summary(args.slots) for r in results)
        + f"; targets ack p99 < {ACK_TARGET_MS} ms, answer p99 < {ANSWER_TARGET_MS} ms: "
        + ("met" if all(r.met() for r in results) else "NOT met")
        + f"; {os.cpu_count()} cores, load {load})"
    )
    return 0 if all(r.winners == args.slots and r.card_full for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
