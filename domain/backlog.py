"""How much work is waiting, for /metrics: the announcement outbox, reminders past due, questions
escalated to the leads. Each is one indexed COUNT over at most `CAP` rows, so a scrape costs a few
milliseconds however large the tables grow (a figure at CAP means "CAP or more")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from db.models import Announcement, AnnouncementDelivery, PolicyQuestion, ShiftReminder
from domain.announcements import CLAIMED, PENDING, SENDING
from domain.policy.service import ESCALATED

CAP = 100_000

DEPTHS = {
    "crewcall_outbox_pending": "Announcement messages waiting to be sent or being sent (capped at 100000)",
    "crewcall_reminders_due": "Shift reminders due and not yet sent (capped at 100000)",
    "crewcall_escalations_waiting": "Policy questions escalated to the leads and not yet answered (capped at 100000)",
}


def depths(session: Session, now: datetime) -> dict[str, int]:
    outbox = (
        select(AnnouncementDelivery.id)
        .join(Announcement, col(Announcement.id) == col(AnnouncementDelivery.announcement_id))
        .where(col(Announcement.state) == SENDING, col(AnnouncementDelivery.state).in_((PENDING, CLAIMED)))
    )
    reminders = select(ShiftReminder.id).where(
        col(ShiftReminder.state).in_(("pending", "sending")), col(ShiftReminder.due_at) <= now
    )
    escalations = select(PolicyQuestion.id).where(col(PolicyQuestion.state) == ESCALATED)
    return {
        "crewcall_outbox_pending": _count(session, outbox),
        "crewcall_reminders_due": _count(session, reminders),
        "crewcall_escalations_waiting": _count(session, escalations),
    }


def _count(session: Session, rows: SelectOfScalar[Any]) -> int:
    return int(session.exec(select(func.count()).select_from(rows.limit(CAP).subquery())).one())
