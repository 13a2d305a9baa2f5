"""The shared policy encoder (POLICY_ENCODER=shared): one real encoder process per cache directory
serves every bot process, gives the vectors in-process encoding gives, starts on demand once, is
started again after it dies or idles out, and an encoder that can't be reached leaves the answers
to the lexical ranking instead of failing them."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from domain.policy import PolicyIndex, load_handbook
from domain.policy.embedding import Encoder, load_encoder
from domain.policy.semantic import Embedder
from domain.policy.shared_encoder import SharedEncoder, encoder_paths, running_pid
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack
from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]
#: A loaded test machine may take longer than a bot's 20 s to start an encoder.
START_TIMEOUT_S = 120.0
TEXTS = [
    "when is payday?",
    "Can I use ChatGPT to draft a contract summary?",
    "Self-referrals do not count.",
    "Expenses. Expenses are reimbursed up to $50 a month. Send receipts to your lead by the 5th.",
    "what happens if I miss a deadline on a task that my lead assigned to me last week?",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory with the ONNX graph built once; each test links it into a directory of its own."""
    directory = tmp_path_factory.mktemp("policy-model")
    assert load_encoder(directory) is not None, "the model package and tokenizers are installed"
    return directory


@pytest.fixture(scope="module")
def in_process(model_dir: Path) -> Encoder:
    encoder = load_encoder(model_dir)
    assert encoder is not None
    return encoder


def _stop(cache_dir: Path) -> None:
    pid = running_pid(cache_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        _wait(lambda: running_pid(cache_dir) is None, "the encoder to stop")


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.05)


@pytest.fixture
def cache_dir(model_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A cache directory of this test's own (so its own encoder), the built graph linked in; the
    encoder this test started is stopped at the end."""
    directory = tmp_path / "policy-cache"
    directory.mkdir()
    for graph in model_dir.glob("minilm-*"):
        os.link(graph, directory / graph.name)
    yield directory
    _stop(directory)


def _client(cache_dir: Path, idle_exit_s: float = 600.0) -> SharedEncoder:
    return SharedEncoder(cache_dir, idle_exit_s=idle_exit_s, start_timeout_s=START_TIMEOUT_S)


def _serves_lines(cache_dir: Path) -> list[str]:
    log = encoder_paths(cache_dir).log
    return [line for line in log.read_text().splitlines() if " serves " in line] if log.exists() else []


def test_two_clients_share_one_encoder_and_get_the_in_process_vectors(
    cache_dir: Path, in_process: Encoder
) -> None:
    first, second = _client(cache_dir), _client(cache_dir)
    expected = in_process.encode(TEXTS)
    one, two = first.encode(TEXTS), second.encode(TEXTS[:2])
    assert one.dtype == np.float32 and one.shape == (len(TEXTS), 384)
    assert np.array_equal(one, expected), "bit-identical to in-process encoding"
    assert np.array_equal(two, in_process.encode(TEXTS[:2]))
    assert np.array_equal(second.encode([TEXTS[4]])[0], in_process.encode([TEXTS[4]])[0])
    assert len(_serves_lines(cache_dir)) == 1, "the second client used the encoder the first started"
    assert running_pid(cache_dir) is not None


def test_many_texts_go_a_few_at_a_time_and_come_back_in_order(
    cache_dir: Path, in_process: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload sends thousands of texts: in parts, so the encoder never holds them all at once."""
    from domain.policy import shared_encoder

    monkeypatch.setattr(shared_encoder, "TEXTS_PER_REQUEST", 2)
    client = _client(cache_dir)
    client.encode(TEXTS[:1])  # started: no part is sent twice below for want of an encoder
    sent: list[int] = []
    request = client._request

    def counted(payload: bytes, rows: int) -> np.ndarray:
        sent.append(rows)
        return request(payload, rows)

    monkeypatch.setattr(client, "_request", counted)
    vectors = client.encode(TEXTS)
    assert sent == [2, 2, 1]
    assert np.array_equal(vectors, in_process.encode(TEXTS))
    assert client.encode([]).shape == (0, 384) and sent == [2, 2, 1]


_CLIENT = """
import sys
from pathlib import Path
from domain.policy.shared_encoder import SharedEncoder, running_pid
vector = SharedEncoder(Path(sys.argv[1]), start_timeout_s=120).encode(["when is payday?"])[0]
print(running_pid(Path(sys.argv[1])), vector[:4].tobytes().hex())
"""


def test_clients_asking_at_once_start_the_encoder_exactly_once(cache_dir: Path) -> None:
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", _CLIENT, str(cache_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [client.communicate(timeout=120)[0].split() for client in clients]
    assert all(client.returncode == 0 for client in clients)
    assert len({tuple(output) for output in outputs}) == 1, outputs  # one encoder PID, one vector
    assert len(_serves_lines(cache_dir)) == 1
    assert int(outputs[0][0]) == running_pid(cache_dir)


def test_a_killed_encoder_is_started_again_by_the_next_question(cache_dir: Path, in_process: Encoder) -> None:
    client = _client(cache_dir)
    client.encode(TEXTS[:1])
    killed = running_pid(cache_dir)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    _wait(lambda: running_pid(cache_dir) is None, "the killed encoder's lock to be released")
    assert encoder_paths(cache_dir).socket.exists(), "the dead encoder's socket is left behind"

    again = client.encode(TEXTS[1:3])
    assert np.array_equal(again, in_process.encode(TEXTS[1:3]))
    restarted = running_pid(cache_dir)
    assert restarted is not None and restarted != killed
    assert len(_serves_lines(cache_dir)) == 2


def test_the_encoder_exits_when_idle_and_the_next_question_starts_it(cache_dir: Path) -> None:
    client = _client(cache_dir, idle_exit_s=1.0)
    client.encode(TEXTS[:1])
    pid = running_pid(cache_dir)
    assert pid is not None
    _wait(lambda: running_pid(cache_dir) is None, "the idle encoder to exit")
    assert not encoder_paths(cache_dir).socket.exists(), "it removed its socket"
    assert "exits after 1 s without a request" in encoder_paths(cache_dir).log.read_text()

    client.encode(TEXTS[:1])
    assert running_pid(cache_dir) not in (None, pid)


class BrokenEncoder:
    """Something listening on the encoder's socket that hangs up on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.hung_up = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.close()
            self.hung_up += 1

    def close(self) -> None:
        self.listener.close()
        self.path.unlink()


def test_an_unreachable_encoder_leaves_the_answer_to_the_lexical_ranking(
    cache_dir: Path, in_process: Encoder, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sections, _ = load_handbook(ROOT / "policies")
    assert PolicyIndex.build(
        sections, embedder=Embedder(cache_dir, in_process)
    ).hybrid  # the handbook's vectors, cached
    broken = BrokenEncoder(encoder_paths(cache_dir).socket)
    env = {"POLICY_ENCODER": "shared", "POLICY_CACHE_DIR": str(cache_dir)}
    try:
        with caplog.at_level(logging.WARNING), BotHarness(sqlite_url, env=env) as bot:
            assert bot.services is not None
            first = bot.command("U1", "/policy", "when is payday?")
            second = bot.command("U2", "/policy", "how are expenses reimbursed?")
    finally:
        broken.close()
    assert "payday" in first.text.lower() and "expenses" in second.text.lower(), (first.text, second.text)
    assert "asked the leads" not in first.text + second.text
    assert broken.hung_up >= 2, "both questions tried the encoder"
    assert running_pid(cache_dir) is None, "no encoder was started beside the one that listens"
    warnings = [
        r for r in caplog.records if "lexical-only until the shared encoder answers" in r.getMessage()
    ]
    assert len(warnings) == 1, "logged once per outage"


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_bot_processes_share_the_encoder_and_never_load_the_model(
    cache_dir: Path, fake: FakeSlack, sqlite_url: str
) -> None:
    env = {"POLICY_ENCODER": "shared", "POLICY_CACHE_DIR": str(cache_dir), "LOG_LEVEL": "WARNING"}
    bots = [BotProcess(fake, sqlite_url, env=env).start() for _ in range(2)]
    try:
        for n, bot in enumerate(bots):
            url = fake.new_response_url()
            assert bot.driver.command(f"U{n}", "/policy", "when is payday?", response_url=url).status == 200
            fake.wait_for(
                "response_url", timeout=60, predicate=lambda c, url=url: c.params.get("_url") == url
            )
        _wait(
            lambda: running_pid(cache_dir) is not None, "the encoder to listen"
        )  # slow to start when loaded
        encoder = running_pid(cache_dir)
        assert encoder is not None and len(_serves_lines(cache_dir)) == 1
        assert "onnxruntime" in _maps(encoder)
        for bot in bots:
            assert "onnxruntime" not in _maps(bot.pid), "the bot process did not load the model"
        bots[0].kill()  # the encoder, in a session of its own, outlives the bot that started it
        assert running_pid(cache_dir) == encoder
    finally:
        for bot in bots:
            bot.kill()


def test_the_encoder_listens_where_the_bot_that_started_it_connects(cache_dir: Path, tmp_path: Path) -> None:
    """A bot started before an upgrade fingerprints the old code: the encoder it starts from the new
    code on disk must still listen on the socket that bot connects to."""
    client = _client(cache_dir)
    older = Path(tempfile.gettempdir()) / f"crewcall-test-{os.getpid()}.sock"
    client.paths = replace(client.paths, socket=older, pid=tmp_path / "older.pid")
    try:
        client.encode(TEXTS[:1])
        assert older.exists() and not encoder_paths(cache_dir).socket.exists()
    finally:
        pid = (tmp_path / "older.pid").read_text().strip()
        if pid:
            os.kill(int(pid), signal.SIGTERM)
            _wait(lambda: not older.exists(), "the encoder to stop")
