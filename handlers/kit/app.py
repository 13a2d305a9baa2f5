"""The Bolt App every listener module registers on, carrying crewcall's services."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.listener import Listener
from slack_bolt.listener.thread_runner import ThreadListenerRunner
from slack_bolt.logger.messages import warning_did_not_call_ack

from handlers.kit.ack import ANSWER_IN_ACK_WITHIN, PromptAck
from handlers.kit.commands import CommandSet, failure_notice
from jobs.home import HomeTab
from jobs.runtime import Services

log = logging.getLogger("crewcall.commands")

# Listener threads mostly wait: for Slack to answer a reply, for their batch's decision. With
# Slack's ~50 ms per reply, 2 per HTTP thread (32) capped a 300-click storm at ~640 answers a second
# before any CPU (bench/click_storm.py: answer p99 1.2-1.4 s with 32, 0.9 s with 64).
LISTENERS_PER_HTTP_THREAD = 4
# In a BoltRequest's context: acknowledged at the HTTP door already, so the listener runs on the
# dispatching thread (a click worker, server/http.py) rather than on another one, woken for an ack
# nobody waits for.
ACKED_AT_DOOR = "crewcall_acked_at_door"


class CrewApp(App):
    """Bolt's App, carrying our services, the Home tab and the slash commands it registered."""

    services: Services
    commands: CommandSet
    listener_pool: ThreadPoolExecutor
    event_handlers: dict[str, list[Callable[..., None]]]
    # Button listeners by action_id (handlers.kit.interactions.button): a click acknowledged at
    # the door goes straight to its own (dispatch_click).
    buttons: dict[str, Callable[[Callable[..., Any], dict[str, Any]], None]]
    # Our modals' callback_ids (handlers.kit.interactions.modal), so a test can submit every form.
    forms: set[str]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.buttons = {}
        self.forms = set()
        bolt = self._listener_runner
        self._listener_runner = PromptAckRunner(
            logger=bolt.logger,
            process_before_response=bolt.process_before_response,
            listener_error_handler=bolt.listener_error_handler,
            listener_start_handler=bolt.listener_start_handler,
            listener_completion_handler=bolt.listener_completion_handler,
            listener_executor=bolt.listener_executor,
            lazy_listener_runner=bolt.lazy_listener_runner,
        )

    @property
    def home(self) -> HomeTab:
        return self.services.home

    def answer_command(self, body: dict[str, Any], received_at: float) -> BoltResponse | None:
        """Run a slash command of ours (`body`: its form fields, signature checked) without Bolt's
        dispatch, whose middleware and trying every listener's matchers in turn cost ~16% of a
        command's CPU (bench/profile_requests.py); None for a command we don't have (Bolt's path
        then). The listener runs on a listener thread; the acknowledgement comes back once it
        answers, or empty after ANSWER_IN_ACK_WITHIN seconds from `received_at` (time.monotonic)."""
        command = self.commands.find(str(body.get("command", "")))
        if command is None:
            return None
        ack = PromptAck()

        def run() -> None:
            try:
                command.dispatch(self.services, ack, body)
            except Exception:
                ref = uuid.uuid4().hex[:8]
                log.exception("%s failed (ref %s)", command.name, ref)
                ack(response_type="ephemeral", text=failure_notice(ref))
            finally:
                ack()  # a listener that never answered is acknowledged now, not at the deadline

        self.listener_pool.submit(run)
        return ack.wait(ANSWER_IN_ACK_WITHIN - (time.monotonic() - received_at))


class PromptAckRunner(ThreadListenerRunner):
    """Bolt's runner for `process_before_response=False`, except how the request thread waits for
    the listener's ack: Bolt polls for it every 10 ms (time.sleep(0.01)), so every acknowledgement
    waited 10 ms at least and each waiting thread woke 100 times a second; here it waits on an
    event that ack() sets, a slash command's acknowledgement is held for its answer
    (handlers.kit.ack), and a click acknowledged at the door runs its listener on the thread that
    dispatches it. The rest is Bolt's: the listener runs on the listener executor, and an
    error before the ack answers 500. Lazy listeners (unused here) keep Bolt's own path."""

    def run(
        self,
        request: BoltRequest,
        response: BoltResponse,
        listener_name: str,
        listener: Listener,
        starting_time: float | None = None,
    ) -> BoltResponse | None:
        if self.process_before_response or request.lazy_only or listener.lazy_functions:
            return super().run(request, response, listener_name, listener, starting_time)
        starting_time = starting_time if starting_time is not None else time.time()
        ack = PromptAck()
        request.context["ack"] = ack  # what the listener's `ack` argument is built from
        if listener.auto_acknowledgement:
            ack()
        outcome: BoltResponse | None = response

        def run_listener() -> None:
            nonlocal outcome
            try:
                self.listener_start_handler.handle(request=request, response=outcome)
                listener.run_ack_function(request=request, response=outcome)  # type: ignore[arg-type]
            except Exception as e:
                if listener.auto_acknowledgement:
                    self.listener_error_handler.handle(error=e, request=request, response=outcome)
                else:
                    outcome = outcome or BoltResponse(status=500)
                    outcome.status = 500
                    if ack.response is not None:  # already acknowledged
                        outcome = None
                    self.listener_error_handler.handle(error=e, request=request, response=outcome)
                    ack.response = outcome
            finally:
                self.listener_completion_handler.handle(request=request, response=outcome)
                ack.acked.set()  # done: acknowledged or never will be

        if request.context.get(ACKED_AT_DOOR):
            run_listener()
            # Nobody reads it (Slack had the door's ack), but a response ends Bolt's dispatch.
            return outcome or ack.response or BoltResponse(status=500)
        self.listener_executor.submit(run_listener)
        if request.body.get("command"):  # a slash command: its answer may ride in the ack
            return ack.wait(ANSWER_IN_ACK_WITHIN - (time.time() - starting_time))
        ack.acked.wait(timeout=max(0.0, listener.ack_timeout - (time.time() - starting_time)))
        if outcome is None and ack.response is None:
            self.logger.warning(warning_did_not_call_ack(listener_name))
            return None
        return ack.response if outcome is None else outcome
