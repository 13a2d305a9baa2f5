"""The Slack side of tasks: claims decided together, the card (posted by the handler, redrawn here
whenever a task changes), and the expiry job: when a task's due date is over, the claims still
unsubmitted are released.

Claims on one task that arrive while a decision on it is being made (a storm of clicks on one card)
wait for it, then are decided together by one of them in one transaction (`domain.tasks.claim_all`:
one lock of the task, one UPDATE for all the slots given): a click costs a fraction of a
transaction instead of one, and every clicker learns their outcome as soon as their batch commits.

`schedule_expiry` registers `expire_claims` for each task with a due date, at the instant it ends
(`domain.tasks.deadline`), with no misfire grace: a bot that was down catches up when it restarts.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from core.authz import Actor
from core.combiner import Combiner
from db.models import Task
from domain import tasks as rules
from jobs import runtime
from jobs.redraw import InPlace, Redraws
from jobs.runtime import Services
from views import tasks as views

_cards = Redraws()


@dataclass(frozen=True)
class _Request:
    services: Services
    task_id: int
    claim: rules.Claim


@dataclass(frozen=True)
class Decided:
    """A claim's outcome; `redraws_card` for the one claim of its batch that should redraw the card
    (once its member has been answered), when the batch changed the task or may have come from a
    stale card."""

    outcome: rules.Taken | rules.TaskRefusal
    redraws_card: bool


def claim(services: Services, task_id: int, member: Actor, source: str) -> Decided:
    """Decide `member`'s claim on the task, together with any others on it waiting meanwhile."""
    return _claims.submit((id(services), task_id), _Request(services, task_id, rules.Claim(member, source)))


def _decide(key: Hashable, requests: Sequence[_Request]) -> list[Decided]:
    services, task_id = requests[0].services, requests[0].task_id
    with services.db.write() as session:
        outcomes = rules.claim_all(
            session,
            task_id,
            [r.claim for r in requests],
            services.clock.now(),
            services.config.max_active_claims,
        )
    stale = [i for i, o in enumerate(outcomes) if isinstance(o, rules.Taken) or o.card_stale]
    return [Decided(o, bool(stale) and i == stale[-1]) for i, o in enumerate(outcomes)]


_claims: Combiner[_Request, Decided] = Combiner(_decide)


def refresh_card(services: Services, task_id: int) -> None:
    """Make the task's card true again (chat.update in place), coalescing concurrent redraws."""
    _cards.update((id(services), task_id), services.slack, lambda: _card(services, task_id))


def _card(services: Services, task_id: int) -> InPlace | None:
    with services.db.read() as session:
        task = rules.get(session, task_id)
    if not (task.channel_id and task.message_ts):
        return None
    text, blocks = views.card(task, services.clock.now())
    return InPlace(task.channel_id, task.message_ts, text, blocks, f"card of {rules.ref(task_id)}")


def _expiry_job(task_id: int) -> str:
    return f"task-expiry:{rules.ref(task_id)}"


def schedule_expiry(services: Services, task: Task) -> None:
    if task.due_at is not None:
        services.scheduler.at(
            _expiry_job(task.id or 0),
            expire_claims,
            task.due_at,
            args=(task.id,),
            misfire_grace=None,  # a bot that was down expires the claims when it comes back
        )


def cancel_expiry(services: Services, task_id: int) -> None:
    services.scheduler.remove(_expiry_job(task_id))


def expire_claims(task_id: int) -> None:
    services = runtime.services()
    with services.db.write() as session:
        task, expired = rules.expire_claims(session, task_id, services.clock.now(), source="job task-expiry")
    if task is None:
        return
    # The card loses its Claim button now that the task is past due, claims or not.
    refresh_card(services, task_id)
    for user_id in expired:
        services.slack.dm(
            user_id, views.expired_dm(task, services.directory.tz_of(user_id)), what="claim expiry"
        )
