"""Claim storm: N contractors press Claim on one task card at the same moment.

    .venv/bin/python -m bench.claim_storm [--clicks 300] [--slots 5] [--backend sqlite|postgresql|both]
    .venv/bin/python -m bench.claim_storm --processes 3   # N real bot processes on PostgreSQL

Boots the real bot (sandbox.harness.BotHarness: create_app, waitress on a free port, the fake Slack),
posts one task with `--slots` slots through `/tasks new`, and fires `--clicks` signed Claim clicks
(SlackDriver.click, one distinct contractor each) from as many threads, released together by a
barrier. The clicking threads run in a child process, as Slack's servers are not inside the bot:
they don't take the bot's GIL. The fake Slack does run inside the bot's process, so every reply,
card update and DM the bot sends costs it CPU here that real Slack would not.

Reported per backend:
- ack latency p50 / p99 / max: from sending a click to the bot's HTTP 200 (what Slack waits for);
- bot CPU per ack: the bot process's CPU time over the burst / clicks (decisions wait for the burst
  to end, so this is what acknowledging costs); unlike wall-clock latency it hardly depends on how
  busy the machine is: clicks x this figure is the CPU the whole burst needs;
- claims decided per second: clicks / (last decision reply received − first click sent), where a
  decision is the ephemeral "is yours" or "is full" reply through the click's response_url (for the
  baseline: its "ok");
- that exactly `--slots` contractors won and the card ends Full, without a Claim button.

Baseline, measured in the same run and the same way: the same storm of signed clicks on a button
whose listener only answers "ok" (`bench_noop`), through the same framework path (authorize, member
lookup, reply). The ratios Claim / no-op say what deciding a claim adds, to the acknowledgements
happening at the same time and to the answers. Each storm is waited out before the next starts.
A second baseline, the HTTP floor: the same storm, sent the same way, to waitress (same settings)
serving an empty WSGI app; no acknowledgement can be faster than that on the same machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

CHANNEL = "C0TASKS"
CLICK_BYTES = 2700  # the size of a signed click on a task card


@dataclass
class Storm:
    """One storm's figures."""

    clicks: int
    latencies: list[float]
    answered_per_s: float | None = None
    cpu_per_ack_ms: float | None = None
    winners: int | None = None
    card_full: bool | None = None
    answers: list[float] = field(default_factory=list)  # seconds from each click to its answer

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)

    @property
    def worst(self) -> float:
        return max(self.latencies) * 1000


def fire(
    bot_urls: list[str],
    secret: str,
    users: list[str],
    action_id: str,
    value: str,
    message: dict[str, Any],
    urls: list[str],
) -> tuple[list[float], list[float]]:
    """In the child process: every user clicks at once; returns ack latencies and send times.

    Each click's payload is built by the driver beforehand (it is Slack's work, not the bot's);
    at the barrier the driver signs and sends it, and the clock runs until the bot's HTTP 200.
    With several bot URLs (processes behind a load balancer) the clicks take turns among them."""
    from sandbox.driver import SlackDriver

    driver = SlackDriver(bot_urls[0], secret)
    built: list[dict[str, Any]] = []
    driver.post_payload = lambda payload, **_: built.append(payload)  # type: ignore[method-assign,assignment,return-value]
    for user, response_url in zip(users, urls, strict=True):
        driver.click(
            user, action_id, value, channel_id=CHANNEL, message_ts=message["ts"], message=message,
            response_url=response_url,
        )  # fmt: skip
    drivers = [SlackDriver(url, secret) for url in bot_urls]
    return send_together(drivers, [urlencode({"payload": json.dumps(payload)}) for payload in built])


def send_together(drivers: list[Any], bodies: list[str]) -> tuple[list[float], list[float]]:
    """Send every body at once (threads released by a barrier), body i to drivers[i % len(drivers)];
    ack latencies and send times."""
    n = len(bodies)
    barrier = threading.Barrier(n)
    latencies, sent = [0.0] * n, [0.0] * n
    failures: list[str] = []

    def click(i: int) -> None:
        barrier.wait()
        sent[i] = time.time()
        started = time.perf_counter()
        response = drivers[i % len(drivers)].post(bodies[i], "application/x-www-form-urlencoded")
        latencies[i] = time.perf_counter() - started
        if response.status != 200:
            failures.append(f"request {i}: HTTP {response.status}")

    threads = [threading.Thread(target=click, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests were not acknowledged: {failures[:3]}")
    return latencies, sent


def storm(
    pool: Any, bot: Any, users: list[str], action_id: str, value: str, message: dict[str, Any]
) -> Storm:
    from sandbox.harness import SIGNING_SECRET

    urls = [bot.fake.new_response_url() for _ in users]
    cpu = time.process_time()
    latencies, sent = pool.apply(fire, ([bot.url], SIGNING_SECRET, users, action_id, value, message, urls))
    cpu_per_ack = (time.process_time() - cpu) / len(users) * 1000  # decisions wait for the burst to end
    # Every click is answered (the no-op button says "ok"): wait for all of them, so that one storm's
    # work is over before the next storm starts.
    wanted = set(urls)
    replies = bot.fake.wait_for(
        "response_url", count=len(users), timeout=300, predicate=lambda c: c.params.get("_url") in wanted
    )
    result = Storm(len(users), latencies, len(users) / (max(c.ts for c in replies) - min(sent)), cpu_per_ack)
    if action_id == "task_claim":
        result.winners = sum("is yours" in c.params.get("text", "") for c in replies)
    return result


def run_backend(backend: str, database_url: str, clicks: int, slots: int, pool: Any) -> tuple[Storm, Storm]:
    from handlers.kit.interactions import button
    from sandbox.harness import BotHarness

    with BotHarness(database_url) as bot:
        assert bot.app is not None
        button(bot.app, "bench_noop")(lambda ctx, value: ctx.reply("ok"))
        fake = bot.fake
        fake.add_user("ULEAD", tz="UTC")
        bot.command("UADMIN", "/crew", "lead <@ULEAD>")
        # Contractors the bot has met before (their profile is fresh), as on a normal day.
        users = [u["id"] for u in fake.add_users(clicks, tz="Europe/Lisbon")]
        for user in users:
            bot.services.directory.refresh(user)
        posted = bot.command(
            "ULEAD",
            "/tasks",
            f"new Review 40 contract summaries slots={slots} rate=120 hours=6 channel={CHANNEL}",
        )
        assert "Posted" in posted.text, posted.text
        card = fake.wait_for("chat.postMessage", predicate=lambda c: c.params.get("channel") == CHANNEL)[0]
        message = dict(fake.find_message(CHANNEL, card.response["ts"]) or {})
        task_id = message["blocks"][-2]["accessory"]["value"]

        # First-request costs (the connection pool growing, statement caches) are not the storm's.
        storm(pool, bot, users[:100], "bench_noop", "warm-up", message)
        noop = storm(pool, bot, users, "bench_noop", "x", message)
        claim = storm(pool, bot, users, "task_claim", task_id, message)
        time.sleep(0.5)  # the last coalesced card redraw
        final = fake.find_message(CHANNEL, card.response["ts"]) or {}
        text = json.dumps(final.get("blocks"))
        claim.card_full = "*Full*" in text and "task_claim" not in text
        print(f"  {backend}: done", file=sys.stderr)
    return noop, claim


def fire_bare(url: str, n: int, body: str) -> tuple[list[float], list[float]]:
    from sandbox.driver import SlackDriver

    return send_together([SlackDriver(url, "any")], [body] * n)


def http_floor(pool: Any, clicks: int, body: str) -> Storm:
    """The same storm against waitress serving an empty WSGI app: the HTTP server's own floor."""
    from waitress.server import create_server

    def empty(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    server = create_server(empty, host="127.0.0.1", port=0, threads=16, connection_limit=1000, backlog=1024)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    try:
        pool.apply(fire_bare, (url, 100, body))
        cpu = time.process_time()
        latencies, _ = pool.apply(fire_bare, (url, clicks, body))
        return Storm(clicks, latencies, cpu_per_ack_ms=(time.process_time() - cpu) / clicks * 1000)
    finally:
        server.close()


def run_cluster(processes: int, clicks: int, slots: int, pool: Any) -> Storm:
    """The Claim storm against `processes` real bot processes (sandbox.cluster) on one fresh
    PostgreSQL database, clicks spread round-robin. The fake Slack runs in this bench's process,
    not the bots'. Returns the storm, with answered/s and winners; `latencies` are the acks."""
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.cluster import Cluster
    from sandbox.fake_slack import FakeSlack
    from sandbox.scratch_db import scratch_database

    with scratch_database("postgresql") as url, FakeSlack() as fake:
        fake.add_user("ULEAD", tz="UTC")
        users = [u["id"] for u in fake.add_users(clicks, tz="Europe/Lisbon")]
        with Cluster(fake, url, processes=processes, env={"LOG_LEVEL": "ERROR"}) as cluster:
            lead = fake.new_response_url()
            cluster.driver(0).command("UADMIN", "/crew", "lead <@ULEAD>", response_url=lead)
            fake.wait_for("response_url", predicate=lambda c: c.params.get("_url") == lead)
            cluster.driver(0).command(
                "ULEAD",
                "/tasks",
                f"new Review 40 contract summaries slots={slots} rate=120 hours=6 channel={CHANNEL}",
            )
            card = fake.wait_for(
                "chat.postMessage", timeout=20, predicate=lambda c: c.params.get("channel") == CHANNEL
            )[0]
            message = dict(fake.find_message(CHANNEL, card.response["ts"]) or {})
            task_id = message["blocks"][-2]["accessory"]["value"]
            bot_urls = [b.url for b in cluster.bots]
            urls = [fake.new_response_url() for _ in users]
            latencies, sent = pool.apply(
                fire, (bot_urls, SIGNING_SECRET, users, "task_claim", task_id, message, urls)
            )
            wanted = set(urls)
            replies = fake.wait_for(
                "response_url", count=clicks, timeout=300, predicate=lambda c: c.params.get("_url") in wanted
            )
            result = Storm(clicks, latencies, clicks / (max(c.ts for c in replies) - min(sent)))
            result.winners = sum("is yours" in c.params.get("text", "") for c in replies)
            by_url = {c.params["_url"]: c.ts for c in replies}
            result.answers = [by_url[u] - t for u, t in zip(urls, sent, strict=True)]
            time.sleep(1.0)  # the last coalesced card redraw
            final = fake.find_message(CHANNEL, card.response["ts"]) or {}
            text = json.dumps(final.get("blocks"))
            result.card_full = "*Full*" in text and "task_claim" not in text
    return result


def main_processes(args: argparse.Namespace) -> int:
    """`--processes N`: one line, N processes beside 1 process measured in the same run."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        one = run_cluster(1, args.clicks, args.slots, pool)
        many = run_cluster(args.processes, args.clicks, args.slots, pool)

    def figures(s: Storm) -> str:
        answers = sorted(s.answers)
        answer_p99 = answers[min(len(answers) - 1, int(len(answers) * 0.99))] * 1000
        return (
            f"ack p50 {s.p50:.0f} ms, p99 {s.p99:.0f} ms; answer p99 {answer_p99:.0f} ms; "
            f"{s.answered_per_s:.0f} decided/s; winners {s.winners} of {args.slots}"
            + ("" if s.card_full else "; CARD NOT FULL")
        )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"claim storm, PostgreSQL, {args.clicks} clicks on one {args.slots}-slot task spread round-robin: "
        f"{args.processes} processes: {figures(many)} | 1 process (same run): {figures(one)} | "
        f"{os.cpu_count()} cores, load {load}"
    )
    ok = all(s.winners == args.slots and s.card_full for s in (one, many))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clicks", type=int, default=300)
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--through-bolt",
        action="store_true",
        help="acknowledge clicks the way Bolt does (after its listener acks), not at the door: for comparison",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="above 1: the Claim storm on that many real bot processes on PostgreSQL (sandbox.cluster), "
        "clicks spread round-robin, beside one process measured the same way; one line",
    )
    args = parser.parse_args()
    if args.processes > 1:
        return main_processes(args)
    if args.through_bolt:
        import server.http

        server.http.is_click = lambda body: False  # every request takes Bolt's own path
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth" warnings are the point

    from sandbox.scratch_db import scratch_database

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, tuple[Storm, Storm]] = {}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for backend in backends:
            with scratch_database(backend) as url:
                results[backend] = run_backend(backend, url, args.clicks, args.slots, pool)
        floor = http_floor(pool, args.clicks, "payload=" + "x" * CLICK_BYTES)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"claim storm: {args.clicks} simultaneous clicks on one {args.slots}-slot task; "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min) at the end"
        + ("; clicks acknowledged by Bolt, not at the door" if args.through_bolt else "")
    )
    print(
        "| backend | storm | ack p50 | ack p99 | ack max | bot CPU per ack | answered/s | winners "
        "| card Full, no button |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, (noop, claim) in results.items():
        for name, s in (("no-op button (baseline)", noop), ("Claim", claim)):
            decided = f"{s.answered_per_s:.0f}" if s.answered_per_s else "—"
            winners = f"{s.winners} of {args.slots}" if s.winners is not None else "—"
            full = {None: "—", True: "yes", False: "NO"}[s.card_full]
            print(
                f"| {backend} | {name} | {s.p50:.0f} ms | {s.p99:.0f} ms | {s.worst:.0f} ms | {s.cpu_per_ack_ms:.2f} ms | {decided} | {winners} | {full} |"
            )
    print(
        f"| — | waitress with an empty app (HTTP floor) | {floor.p50:.0f} ms | {floor.p99:.0f} ms "
        f"| {floor.worst:.0f} ms | {floor.cpu_per_ack_ms:.2f} ms | — | — | — |"
    )
    for backend, (noop, claim) in results.items():
        print(f"{backend}: Claim ack p99 / no-op ack p99 = {claim.p99 / noop.p99:.2f}")
        print(f"{backend}: Claim ack p99 / HTTP floor p99 = {claim.p99 / floor.p99:.2f}")
        if claim.answered_per_s and noop.answered_per_s:
            print(
                f"{backend}: claims decided/s / no-op answered/s = {claim.answered_per_s / noop.answered_per_s:.2f}"
            )
    if len(results) == 2:
        sqlite, pg = results["sqlite"][1], results["postgresql"][1]
        print(f"Claim ack p99 PostgreSQL / SQLite = {pg.p99 / sqlite.p99:.2f}")
        if sqlite.answered_per_s and pg.answered_per_s:
            print(f"decided/s PostgreSQL / SQLite = {pg.answered_per_s / sqlite.answered_per_s:.2f}")
    ok = all(c.winners == args.slots and c.card_full for _, c in results.values())
    print("correct: exactly one claim per slot, card Full" if ok else "INCORRECT: see the table")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
