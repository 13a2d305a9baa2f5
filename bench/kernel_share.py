"""Where the bot's CPU goes below Python: `perf` on a real `bot.py` under bench.throughput's load.

    .venv/bin/python -m bench.kernel_share [--backend sqlite|postgresql]

Needs `perf` (Debian's linux-perf). Starts `bot.py`, seeds and warms it as bench.throughput does, then
records it with `perf record -F 499` during 1,500 `/tasks` + `/tasks mine` commands and counts the
context switches of all its threads (/proc). One line: requests/s under perf, context switches per
command, the shares of the kernel, libpython and SQLite in the samples, and the top symbols. py-spy
(bench.profile_requests) sees only Python holding the GIL; a thread handing the GIL to another costs
kernel time it cannot see.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import throughput

SHOWN = 4


def report(data: Path, sort: str) -> list[tuple[float, str]]:
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--sort", sort],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%") and not line.startswith("#"):
            rows.append((float(parts[0][:-1]), " ".join(parts[1:])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--out", type=Path, default=Path("/tmp/crewcall-perf.data"))
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: linux-perf)")
    logging.basicConfig(level=logging.ERROR)
    with throughput.one_bot(args.backend) as (pool, fake, bot, members):
        throughput.seed(fake, bot.url, members)
        throughput.run_load(pool, fake, [bot.url], members, 240, 16)
        perf = subprocess.Popen(
            ["perf", "record", "-F", "499", "-p", str(bot.pid), "-o", str(args.out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # perf attaches
        switched = throughput.context_switches(bot.pid)
        run = throughput.run_load(pool, fake, [bot.url], members, 1500, 16)
        switches = (throughput.context_switches(bot.pid) - switched) / 1500
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    shares = {name: pct for pct, name in report(args.out, "dso")}

    def share(prefix: str) -> float:
        return sum(pct for name, pct in shares.items() if name.startswith(prefix))

    top = "; ".join(f"{pct:.0f}% {name}" for pct, name in report(args.out, "sym")[:SHOWN])
    print(
        f"kernel share ({args.backend}, {run.per_s:.0f} req/s under perf): {switches:.0f} context switches "
        f"per command; kernel {share('[kernel'):.0f}%, libpython {share('libpython'):.0f}%, "
        f"SQLite {share('libsqlite'):.0f}% of the samples; top: {top}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
