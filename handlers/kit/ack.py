"""A request's acknowledgement, which a slash command's answer can ride in.

Slack shows whatever a command's acknowledgement carries as the user's answer. Sent there, the
answer needs no response_url post: one round trip to Slack fewer (0.1-0.5 s on real Slack), and
a fifth fewer GIL samples per command (bench/profile_requests.py: 530 to 410 for 1,500 commands). So a command's acknowledgement is held until its
first reply, its first Web API call (which must come after the ack), the end of its listener, or
ANSWER_IN_ACK_WITHIN seconds, whichever comes first; replies after that go through the response_url.
"""

from __future__ import annotations

import threading
from typing import Any

from slack_bolt import Ack, BoltResponse

# Slack waits 3 s for an acknowledgement, network included: a command not answered by then is
# acknowledged empty, and answered through its response_url once it is ready.
ANSWER_IN_ACK_WITHIN = 1.5


class PromptAck(Ack):
    """Bolt's ack, which also wakes the request thread waiting for it. The first answer stands: a
    held command's deadline and its listener may answer at the same moment, and the listener must
    learn whether its reply made it into the acknowledgement (`answer`)."""

    def __init__(self) -> None:
        super().__init__()
        self.acked = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        with self._lock:
            if self.response is None:
                super().__call__(*args, **kwargs)
            self.acked.set()
            assert self.response is not None
            return self.response

    def answer(self, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
        """Reply privately in the acknowledgement; False when it has gone already."""
        with self._lock:
            if self.response is not None:
                return False
            super().__call__(response_type="ephemeral", text=text, blocks=blocks)
            self.acked.set()
            return True

    def wait(self, seconds: float) -> BoltResponse:
        """The acknowledgement, once the listener has answered or after `seconds` (empty then)."""
        self.acked.wait(timeout=max(0.0, seconds))
        return self()
