"""The shared policy encoder's memory while a handbook reload embeds every section.

    .venv/bin/python -m bench.reload_rss [--sections 1000]

Writes a synthetic handbook (bench.policy's generator, plus the real sections in ``policies/``) to a
temp dir, starts the shared encoder on a cache directory of its own (data/bench-reload-cache: the
ONNX graph is built there once; the handbook's vectors are emptied first, so every text is embedded),
and builds the index through it, as a bot's start-up or `/policy reload` does with a new handbook.
The encoder's VmRSS is polled every 50 ms and its VmHWM read at the end, from /proc. One line is
printed: the encoder idle (after one question: the baseline, in the same run), its peak during the
build (VmHWM; the polled VmRSS peak beside it), after it, and the file-backed share:

    reload rss (1,017 sections, 7,700 texts embedded in 90 s): encoder idle 130 MB (file-backed 47),
    peak 137 MB (polled 137; anonymous 90, file-backed 48), after 137 MB; target < 150 MB
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

from bench.policy import synth_handbook
from bench.rss import status_mb
from domain.policy import PolicyIndex, load_handbook
from domain.policy.semantic import Embedder
from domain.policy.shared_encoder import SharedEncoder, running_pid

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "data" / "bench-reload-cache"
POLL_S = 0.05


def memory_mb(pid: int) -> dict[str, float]:
    return {field: status_mb(pid, field) for field in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=1000, help="synthetic sections (default 1000)")
    args = parser.parse_args()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for vectors in CACHE_DIR.glob("vectors*"):  # every text is embedded again
        vectors.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        handbook = Path(tmp)
        synth_handbook(handbook, args.sections, seed=7)
        for real in (ROOT / "policies").glob("*.md"):
            shutil.copy(real, handbook / real.name)
        sections, _ = load_handbook(handbook)
        encoder = SharedEncoder(CACHE_DIR, idle_exit_s=120)
        encoder.encode(["when is payday?"])
        pid = running_pid(CACHE_DIR)
        assert pid is not None, "the shared encoder started"
        idle = memory_mb(pid)
        polled = dict(idle)
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                for key, value in memory_mb(pid).items():
                    polled[key] = max(polled[key], value)
                time.sleep(POLL_S)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        embedder = Embedder(CACHE_DIR, encoder)
        started = time.monotonic()
        index = PolicyIndex.build(sections, embedder=embedder)
        seconds = time.monotonic() - started
        done.set()
        watcher.join()
        after = memory_mb(pid)
        assert index.hybrid
        os.kill(pid, signal.SIGTERM)
    print(
        f"reload rss ({len(sections):,} sections, {embedder.encoded:,} texts embedded in {seconds:.0f} s): "
        f"encoder idle {idle['VmRSS']:.0f} MB (file-backed {idle['RssFile']:.0f}), "
        f"peak {after['VmHWM']:.0f} MB (polled {polled['VmRSS']:.0f}; anonymous {polled['RssAnon']:.0f}, "
        f"file-backed {polled['RssFile']:.0f}), after {after['VmRSS']:.0f} MB; target < 150 MB"
    )


if __name__ == "__main__":
    main()
