"""Throughput vs bare Bolt: signed `/tasks` and `/tasks mine` from many members, N at a time.

    .venv/bin/python -m bench.throughput [--requests 1500] [--members 60] [--concurrency 16]
        [--variants bare,sqlite,postgresql2]

Variants, all measured in the same run, each against real processes started here:
- `bare`: bench/bare_bolt.py, a Bolt app that only acknowledges `/tasks`, on waitress with the
  bot's thread count (HTTP_THREADS, 16). Measured first and last; its figure is the mean of both.
- `sqlite`: one `bot.py` (sandbox.bot_process.BotProcess, HTTP mode) on a SQLite file.
- `postgresql2`: two `bot.py` processes on one PostgreSQL database, the client sending to them in
  turn (a trivial round-robin load balancer). `postgresql1` (or any count) runs that many; SQLite
  runs one process only.

The store is seeded through the bot's own commands: a lead posts 30 tasks of 6 slots and every
member claims 2 (4 claims a task), so `/tasks` lists a page of claimable tasks and `/tasks mine` 2 rows. Every member has
sent one command before the measurement (their profile is fresh, as on a normal day), then
`--requests` commands (alternately `/tasks` and `/tasks mine`, the members in turn) are sent from
`--concurrency` threads in a child process (Slack's servers are not inside the bot), each on a new
connection as Slack does. MEMBER_COMMANDS_PER_MIN is raised so no request is refused.

Figures per variant: requests/s = requests / wall time of the run, from the first send to the last
answer: for the bot the answer is the ephemeral list in its acknowledgement, or else the one it
posts to the response_url (the fake Slack, running in this bench's process), for the bare app the
ack itself; ack p50/p99 from sending a request to its HTTP 200, and their mean beside what Little's law gives for it (requests in flight /
requests/s: the client sends the next request as soon as an ack comes back); the server processes'
CPU time and context switches per request; and the ratio of requests/s to bare Bolt's, per process. One line is printed:

    throughput: bare 640 req/s p99 30 ms | sqlite 1 proc 250 req/s (0.39) ack p99 40 ms | ...
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
THREADS = 16
TASKS, SLOTS, CLAIMS_EACH = 30, 6, 2
CHANNEL = "C0TASKS"
BOT_ENV = {"MEMBER_COMMANDS_PER_MIN": "100000", "LOG_LEVEL": "WARNING", "HTTP_THREADS": str(THREADS)}


@dataclass
class Run:
    requests: int
    latencies: list[float]
    seconds: float
    cpu_ms: float | None = None  # the bot processes' CPU time (user + system) per request
    switches: float | None = None  # the bot processes' context switches (all threads) per request

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies) / len(self.latencies) * 1000

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def send_all(
    urls: list[str], secret: str, bodies: list[str], concurrency: int
) -> tuple[list[float], float, dict[int, tuple[float, str]]]:
    """In the child process: send every body (request i to urls[i % len(urls)]) from `concurrency`
    threads; the ack latencies, the wall-clock time of the first send, and the answers that came in
    the acknowledgement: {i: (wall-clock time it arrived, its text)}."""
    from sandbox.driver import SlackDriver

    drivers = [SlackDriver(url, secret) for url in urls]
    latencies = [0.0] * len(bodies)
    failures: list[str] = []
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency)
    started_at: list[float] = []
    in_ack: dict[int, tuple[float, str]] = {}

    def worker() -> None:
        barrier.wait()
        with lock:
            if not started_at:
                started_at.append(time.time())
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            began = time.perf_counter()
            response = drivers[i % len(drivers)].post(bodies[i], "application/x-www-form-urlencoded")
            latencies[i] = time.perf_counter() - began
            if response.status != 200:
                failures.append(f"request {i}: HTTP {response.status} {response.body[:200]}")
            elif response.body.strip():
                in_ack[i] = (time.time(), str(response.json().get("text", "")))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[:3]}")
    return latencies, started_at[0], in_ack


def command_bodies(payloads: Any, members: list[str], n: int, response_urls: list[str]) -> list[str]:
    return [
        urlencode(
            payloads.command_fields(
                members[i % len(members)],
                "/tasks",
                "" if i % 2 == 0 else "mine",
                response_url=response_urls[i],
            )
        )
        for i in range(n)
    ]


def run_load(pool: Any, fake: Any, urls: list[str], members: list[str], n: int, concurrency: int) -> Run:
    """`n` commands against the bot process(es) at `urls`; done when every answer has arrived."""
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.driver import SlackPayloads

    response_urls = [fake.new_response_url() for _ in range(n)]
    bodies = command_bodies(SlackPayloads(fake=fake), members, n, response_urls)
    latencies, first_sent, in_ack = pool.apply(send_all, (urls, SIGNING_SECRET, bodies, concurrency))
    wanted = {url for i, url in enumerate(response_urls) if i not in in_ack}
    posted = fake.wait_for(
        "response_url", count=len(wanted), timeout=600, predicate=lambda c: c.params.get("_url") in wanted
    )
    answers = [(c.ts, str(c.params.get("text", ""))) for c in posted] + list(in_ack.values())
    bad = [text for _, text in answers if "tasks" not in text.lower()]
    if bad:
        raise RuntimeError(f"{len(bad)} unexpected answers, e.g. {bad[0][:200]!r}")
    return Run(n, latencies, max(at for at, _ in answers) - first_sent)


def seed(fake: Any, url: str, members: list[str]) -> None:
    """Tasks and claims through the bot's own commands (see the module's docstring)."""
    from sandbox.bot_process import SIGNING_SECRET
    from sandbox.driver import SlackDriver
    from sandbox.harness import reply_to

    driver = SlackDriver(url, SIGNING_SECRET, fake=fake)

    def command(user: str, text: str, expected: str) -> None:
        response_url = fake.new_response_url()
        command = "/crew" if user == "UADMIN" else "/tasks"
        reply = reply_to(
            fake, driver.command(user, command, text, response_url=response_url), response_url, 60
        )
        if expected not in reply.text:
            raise RuntimeError(f"seeding {command} {text}: {reply.text[:200]!r}")

    fake.add_user("ULEAD", tz="UTC")
    command("UADMIN", "lead <@ULEAD>", "ULEAD")
    for i in range(TASKS):
        command(
            "ULEAD",
            f"new Review contract batch {i + 1} slots={SLOTS} rate=40 hours=2 channel={CHANNEL}",
            "Posted",
        )
    for m, member in enumerate(members):
        for k in range(CLAIMS_EACH):
            command(member, f"claim T-{(m + k) % TASKS + 1}", "is yours")


@contextmanager
def one_bot(backend: str, members_n: int = 60) -> Iterator[tuple[Any, Any, Any, list[str]]]:
    """A client pool, the fake Slack with `members_n` members, and one bot process on a fresh
    `backend` store, for the benches that load one bot (profile, memory); stopped on the way out."""
    from sandbox.bot_process import BotProcess
    from sandbox.fake_slack import FakeSlack
    from sandbox.scratch_db import scratch_database

    with (
        multiprocessing.get_context("spawn").Pool(1) as pool,
        FakeSlack() as fake,
        scratch_database(backend) as url,
    ):
        members = [u["id"] for u in fake.add_users(members_n, tz="Europe/Lisbon")]
        bot = BotProcess(fake, url, env=BOT_ENV).start()
        try:
            yield pool, fake, bot, members
        finally:
            bot.stop()


def measure_bot(pool: Any, backend: str, processes: int, members_n: int, n: int, concurrency: int) -> Run:
    from sandbox.bot_process import BotProcess
    from sandbox.fake_slack import FakeSlack
    from sandbox.scratch_db import scratch_database

    with FakeSlack() as fake, scratch_database(backend) as database_url:
        members = [u["id"] for u in fake.add_users(members_n, tz="Europe/Lisbon")]
        bots = [BotProcess(fake, database_url, env=BOT_ENV)]
        bots[0].start()
        try:
            seed(fake, bots[0].url, members)
            for _ in range(processes - 1):
                bots.append(BotProcess(fake, database_url, env=BOT_ENV).start())
            urls = [bot.url for bot in bots]
            # Every member once, on every process: first-request costs (pools, caches) are not the run's.
            run_load(pool, fake, urls, members, len(members) * processes * 2, concurrency)
            cpu = sum(cpu_seconds(bot.pid) for bot in bots)
            switched = sum(context_switches(bot.pid) for bot in bots)
            run = run_load(pool, fake, urls, members, n, concurrency)
            run.cpu_ms = (sum(cpu_seconds(bot.pid) for bot in bots) - cpu) / n * 1000
            run.switches = (sum(context_switches(bot.pid) for bot in bots) - switched) / n
            return run
        finally:
            for bot in bots:
                bot.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all of a process's threads so far (Linux /proc):
    a thread handing the GIL or a request to another costs one or two (perf showed the kernel's
    switching at about half the bot's CPU before requests took turns, core/turns.py)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
    return total


def measure_bare(pool: Any, members: list[str], n: int, concurrency: int) -> Run:
    from sandbox.bot_process import SIGNING_SECRET, free_port
    from sandbox.driver import SlackPayloads
    from sandbox.fake_slack import FakeSlack

    with FakeSlack() as fake:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_bolt", str(port), SIGNING_SECRET, str(THREADS), fake.api_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            url = f"http://127.0.0.1:{port}"
            _wait_listening(url)
            payloads = SlackPayloads(fake=None)
            urls = [f"http://127.0.0.1:9/response/{i}" for i in range(n)]
            pool.apply(
                send_all, ([url], SIGNING_SECRET, command_bodies(payloads, members, 200, urls), concurrency)
            )
            cpu = cpu_seconds(proc.pid)
            latencies, first, _ = pool.apply(
                send_all, ([url], SIGNING_SECRET, command_bodies(payloads, members, n, urls), concurrency)
            )
            return Run(n, latencies, time.time() - first, (cpu_seconds(proc.pid) - cpu) / n * 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_listening(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/", timeout=1)
        except urllib.error.HTTPError:
            return  # it answers (404 for GET /): listening
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise RuntimeError("the bare Bolt app did not start listening")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--members", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--variants", default="bare,sqlite,postgresql2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    variants = args.variants.split(",")
    members = [f"UBENCH{i:04d}" for i in range(args.members)]
    load_before = os.getloadavg()[0]
    parts: list[str] = []
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        bare_runs = (
            [measure_bare(pool, members, args.requests, args.concurrency)] if "bare" in variants else []
        )
        bots: list[tuple[str, int, Run]] = []
        for variant in variants:
            if variant == "bare":
                continue
            backend = variant.rstrip("0123456789")
            processes = int(variant[len(backend) :] or 1)
            run = measure_bot(pool, backend, processes, args.members, args.requests, args.concurrency)
            bots.append((backend, processes, run))
        if bare_runs:
            bare_runs.append(measure_bare(pool, members, args.requests, args.concurrency))
    bare_per_s = sum(r.per_s for r in bare_runs) / len(bare_runs) if bare_runs else None
    if bare_runs:
        shown = "/".join(f"{r.per_s:.0f}" for r in bare_runs)
        parts.append(
            f"bare Bolt {bare_per_s:.0f} req/s ({shown}) p99 {max(r.pct(0.99) for r in bare_runs):.0f} ms, "
            f"CPU {sum(r.cpu_ms or 0 for r in bare_runs) / len(bare_runs):.1f} ms/request"
        )
    for backend, processes, run in bots:
        ratio = f", {run.per_s / processes / bare_per_s:.2f} of bare per process" if bare_per_s else ""
        parts.append(
            f"{backend} x{processes} {run.per_s:.0f} req/s{ratio}, ack p50 {run.pct(0.5):.0f} ms "
            f"p99 {run.pct(0.99):.0f} ms, mean {run.mean_ms:.0f} ms (Little: {args.concurrency} in flight / "
            f"req/s = {args.concurrency / run.per_s * 1000:.0f} ms), bot CPU {run.cpu_ms:.1f} ms/request, "
            f"{run.switches:.0f} context switches/request"
        )
    load = "/".join(f"{x:.1f}" for x in (load_before, os.getloadavg()[0]))
    print(
        f"throughput ({args.requests} /tasks + /tasks mine, {args.members} members, {args.concurrency} at a "
        f"time, {os.cpu_count()} cores, load {load} before/after): " + " | ".join(parts)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
