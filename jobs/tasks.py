"""The Slack side of tasks: the card (posted by the handler, redrawn here whenever a task changes),
and the expiry job: when a task's due date is over, the claims still unsubmitted are released.

`schedule_expiry` registers `expire_claims` for each task with a due date, at the instant it ends
(`domain.tasks.deadline`), with no misfire grace: a bot that was down catches up when it restarts.
"""

from __future__ import annotations

from db.models import Task
from domain import tasks as rules
from jobs import runtime
from jobs.redraw import InPlace, Redraws
from jobs.runtime import Services
from views import tasks as views

_cards = Redraws()


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
