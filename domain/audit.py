"""The audit log: who changed what, when, and from where. Written in the same transaction as the
change it records, so the log and the state can never disagree."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from db.models import AuditEntry


def record(
    session: Session,
    *,
    at: datetime,
    actor_id: str,
    action: str,
    entity: str,
    entity_id: str | int,
    source: str = "",
    **detail: Any,
) -> AuditEntry:
    entry = AuditEntry(
        at=at,
        actor_id=actor_id,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        source=source[:120],
        detail=json.dumps(detail, default=str, sort_keys=True),
    )
    session.add(entry)
    return entry


def history(
    session: Session, entity: str, entity_id: str | int, limit: int = 200, offset: int = 0
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
