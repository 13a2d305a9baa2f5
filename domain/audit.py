"""The audit log: who changed what, when, and from where. Written in the same transaction as the
change it records, so the log and the state can never disagree.

Hours and claims are settled from this log, so every row has one form, kept here rather than by each
caller (the functions below refuse any other):
- `actor_id` is the Slack user id of the member who made the change, or `BOT` for the changes the
  bot makes on its own (an expired claim, an auto-closed clock-in, a shift's start and no-shows, a
  referral linked or promoted). `BOT` is "crewcall", the name already recorded for those changes
  everywhere but task expiry, already on referrals' `updated_by`, and already what `/tasks history`
  showed for the bot; so only the expiry rows needed rewriting (migration 0009).
- `entity` names the kind of thing changed and `entity_id` is its primary key as text: the bare
  number (`"3"`; a ref like `S-3` is for display), or for a `member`, keyed by their Slack user id,
  that id (`record_member`). The handbook, a single thing, is its `policy_revision` row, 1.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from db.models import AuditEntry

BOT = "crewcall"
MEMBER = "member"

_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]+")


def record(
    session: Session,
    *,
    at: datetime,
    actor_id: str,
    action: str,
    entity: str,
    entity_id: int,
    source: str = "",
    **detail: Any,
) -> AuditEntry:
    """A change to the numbered `entity` with id `entity_id`, made by a member or by `BOT`."""
    if entity == MEMBER:
        raise ValueError("a member is keyed by their Slack user id: use audit.record_member")
    if isinstance(entity_id, bool) or not isinstance(entity_id, int) or entity_id <= 0:
        raise ValueError(f"audit entity_id must be the {entity}'s numeric id, not {entity_id!r}")
    return _write(session, at, actor_id, action, entity, str(entity_id), source, detail)


def record_member(
    session: Session,
    *,
    at: datetime,
    actor_id: str,
    action: str,
    member_id: str,
    source: str = "",
    **detail: Any,
) -> AuditEntry:
    """A change to the member whose Slack user id is `member_id`."""
    if not _SLACK_USER_ID.fullmatch(member_id):
        raise ValueError(f"audit member_id must be a Slack user id, not {member_id!r}")
    return _write(session, at, actor_id, action, MEMBER, member_id, source, detail)


def _write(
    session: Session,
    at: datetime,
    actor_id: str,
    action: str,
    entity: str,
    entity_id: str,
    source: str,
    detail: dict[str, Any],
) -> AuditEntry:
    if actor_id != BOT and not _SLACK_USER_ID.fullmatch(actor_id):
        raise ValueError(f"audit actor_id must be a Slack user id or audit.BOT, not {actor_id!r}")
    entry = AuditEntry(
        at=at,
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        source=source[:120],
        detail=json.dumps(detail, default=str, sort_keys=True),
    )
    session.add(entry)
    return entry


def history(
    session: Session, entity: str, entity_id: int, limit: int = 200, offset: int = 0
) -> list[AuditEntry]:
    """Oldest first; `offset` pages through a long history."""
    return list(
        session.exec(
            select(AuditEntry)
            .where(AuditEntry.entity == entity, AuditEntry.entity_id == str(entity_id))
            .order_by(col(AuditEntry.id))
            .offset(offset)
            .limit(limit)
        )
    )


def details(entry: AuditEntry) -> dict[str, Any]:
    return json.loads(entry.detail or "{}")
