"""Task jobs: when a task's due date is over, the claims still unsubmitted are released.

`handlers.tasks` schedules `expire_claims` for each task with a due date, at the instant it ends
(`domain.tasks.deadline`), with no misfire grace: a bot that was down catches up when it restarts.
"""

from __future__ import annotations

from domain import tasks as rules
from handlers.tasks import refresh_card
from jobs import runtime
from views import tasks as views


def expire_claims(task_id: int) -> None:
    services = runtime.services()
    with services.db.session() as session:
        task, expired = rules.expire_claims(session, task_id, services.clock.now(), source="job task-expiry")
    if task is None:
        return
    # The card loses its Claim button now that the task is past due, claims or not.
    refresh_card(services, task_id)
    for user_id in expired:
        services.slack.dm(
            user_id, views.expired_dm(task, services.directory.tz_of(user_id)), what="claim expiry"
        )
