"""Announcements: who a broadcast reaches, when it goes, and the outbox that delivers it once.

Audiences (decided here, documented in README):
* **channels**: one post into each channel, carrying the lead's name and a Got it button; the
  channel's members read it there, nobody gets a DM.
* **skills**: a DM to every member holding any of the skills (bots and deleted accounts left out).
* **everyone**: a DM to every non-bot, non-deleted member of the workspace, as Slack's `users.list`
  lists them when the announcement goes out (not only the members the bot has met).

Life of an announcement: `draft` (only while the lead looks at the preview) → `scheduled` (for now
or a later time) → `sending` → `done`; `cancelled` from scheduled or sending. The audience is
resolved when it goes out, and in that same transaction one outbox row per recipient is written
(`materialize`), before the first message leaves. Each row then moves pending → sending (claimed by
a conditional UPDATE, so two workers never take the same row) → sent / failed, or cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, update
from sqlmodel import Session, col, select

from core.authz import Actor
from core.errors import UserError
from db.models import Announcement, AnnouncementAck, AnnouncementDelivery, Member, MemberSkill
from db.statements import insert_ignore
from domain import audit
from domain.members import Profile

MAX_TEXT = 3000  # one Block Kit section: the message is never cut
MAX_CHANNELS = 20
MAX_SKILLS = 20
MAX_AHEAD = timedelta(days=90)
DRAFT_KEPT = timedelta(days=1)
# A delivery that failed for a reason that might pass (not a permanent one) is tried this often.
MAX_ATTEMPTS = 5

CHANNELS, SKILLS, EVERYONE = "channels", "skills", "everyone"
DRAFT, SCHEDULED, SENDING, DONE, CANCELLED = "draft", "scheduled", "sending", "done", "cancelled"
PENDING, CLAIMED, SENT, FAILED = "pending", "sending", "sent", "failed"
DM, POST = "dm", "channel"

# Slack's own Slackbot is not a bot account in users.list, but it is no member either.
SLACKBOT = "USLACKBOT"


@dataclass(frozen=True)
class Audience:
    kind: str
    ids: tuple[str, ...] = ()

    @classmethod
    def channels(cls, ids: Iterable[str]) -> Audience:
        unique = tuple(dict.fromkeys(ids))
        if not unique:
            raise UserError("Pick at least one channel.")
        if len(unique) > MAX_CHANNELS:
            raise UserError(f"At most {MAX_CHANNELS} channels per announcement (you named {len(unique)}).")
        return cls(CHANNELS, unique)

    @classmethod
    def skills(cls, skills: Iterable[str]) -> Audience:
        unique = tuple(sorted(set(skills)))
        if not unique:
            raise UserError("Name at least one skill, like skill=legal.")
        if len(unique) > MAX_SKILLS:
            raise UserError(f"At most {MAX_SKILLS} skills per announcement (you named {len(unique)}).")
        return cls(SKILLS, unique)

    @classmethod
    def everyone(cls) -> Audience:
        return cls(EVERYONE)

    @classmethod
    def of(cls, announcement: Announcement) -> Audience:
        ids = tuple(i for i in announcement.audience.split(",") if i)
        return cls(announcement.audience_kind, ids)

    def describe(self) -> str:
        if self.kind == CHANNELS:
            return ", ".join(f"<#{c}>" for c in self.ids)
        if self.kind == SKILLS:
            names = ", ".join(f"`{s}`" for s in self.ids)
            return f"members with skill {names}" if len(self.ids) == 1 else f"members with any of {names}"
        return "everyone in the workspace"


# ---- composing -----------------------------------------------------------------------------------


def check_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UserError("The announcement has no text. Write the message after the audience.")
    if len(text) > MAX_TEXT:
        raise UserError(
            f"The announcement is {len(text):,} characters; the limit is {MAX_TEXT:,}. Shorten it or link to a doc."
        )
    return text


def local_send_time(wall: datetime, tz: str, now: datetime) -> datetime:
    """`at=2026-03-14T09:30` read in the lead's timezone, as an instant; refused when it does not
    exist there (the night clocks spring forward), has passed, or is too far ahead."""
    zone = _zone(tz)
    aware = wall.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise UserError(
            f"{wall:%Y-%m-%d %H:%M} does not exist in {tz} (the clocks change that night). Pick another time."
        )
    return check_send_at(aware.astimezone(UTC), now, tz)


def check_send_at(when: datetime, now: datetime, tz: str) -> datetime:
    local = when.astimezone(_zone(tz))
    if when <= now:
        raise UserError(
            f"{local:%Y-%m-%d %H:%M} ({tz}) has already passed. Pick a later time, or leave the time out to send now."
        )
    if when - now > MAX_AHEAD:
        raise UserError(f"Announcements can be scheduled at most {MAX_AHEAD.days} days ahead.")
    return when


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def skill_members(session: Session, skills: Iterable[str]) -> list[str]:
    """Members holding any of the skills, bots and deleted accounts left out."""
    rows = session.exec(
        select(MemberSkill.user_id)
        .join(Member, col(Member.user_id) == col(MemberSkill.user_id))
        .where(col(MemberSkill.skill).in_(list(skills)), col(Member.is_bot).is_(False))
        .where(col(Member.deleted).is_(False))
        .distinct()
        .order_by(col(MemberSkill.user_id))
    )
    return list(rows)


def known_skills(session: Session) -> list[str]:
    return list(session.exec(select(MemberSkill.skill).distinct().order_by(col(MemberSkill.skill))))


def reachable(profiles: Iterable[Profile]) -> list[str]:
    """Everyone an "everyone" announcement DMs: people, not bots, not deactivated accounts."""
    seen: dict[str, None] = {}
    for p in profiles:
        if not p.is_bot and not p.deleted and p.user_id != SLACKBOT:
            seen.setdefault(p.user_id)
    return list(seen)


def estimate(session: Session, audience: Audience) -> int | None:
    """How many messages the audience means today; None for everyone (counted when it goes out)."""
    if audience.kind == CHANNELS:
        return len(audience.ids)
    if audience.kind == SKILLS:
        return len(skill_members(session, audience.ids))
    return None


def create(
    session: Session,
    *,
    by: Actor,
    text: str,
    audience: Audience,
    ask_ack: bool,
    send_at: datetime | None,
    now: datetime,
    source: str,
    draft: bool = False,
) -> Announcement:
    """A new announcement, scheduled (for `send_at`, or now when None), or a draft for the preview.
    A draft sent "now" keeps send_at == created_at, which is how `confirm` tells it apart."""
    text = check_text(text)
    if send_at is not None:
        check_send_at(send_at, now, by.tz)
    if audience.kind == SKILLS and not skill_members(session, audience.ids):
        raise UserError(
            f"Nobody has {'the skill' if len(audience.ids) == 1 else 'any of the skills'} "
            f"{', '.join(f'`{s}`' for s in audience.ids)} yet, so there is nobody to send it to."
        )
    if draft:
        # Previews closed without sending leave drafts behind: a lead's new draft clears old ones.
        session.execute(
            delete(Announcement).where(
                col(Announcement.author_id) == by.user_id,
                col(Announcement.state) == DRAFT,
                col(Announcement.created_at) < now - DRAFT_KEPT,
            )
        )
    announcement = Announcement(
        author_id=by.user_id,
        author_name=(by.name or by.user_id)[:200],
        author_tz=by.tz,
        text=text,
        audience_kind=audience.kind,
        audience=",".join(audience.ids),
        ask_ack=ask_ack,
        state=DRAFT if draft else SCHEDULED,
        send_at=send_at or now,
        created_at=now,
    )
    session.add(announcement)
    session.flush()
    if not draft:
        _audit_created(session, announcement, now, source)
    return announcement


def get_draft(session: Session, announcement_id: int, by: Actor) -> Announcement:
    """The lead's own draft (or what became of it)."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None or announcement.author_id != by.user_id:
        raise UserError("That draft is gone. Start again with `/announce`.")
    return announcement


def confirm(session: Session, announcement_id: int, by: Actor, now: datetime, source: str) -> Announcement:
    """The lead pressed Send/Schedule on the preview. A second press (or a retried request) finds
    it no longer a draft and says so."""
    announcement = get_draft(session, announcement_id, by)
    if announcement.state != DRAFT:
        raise UserError(f"{label(announcement_id)} was already confirmed: it is {announcement.state}.")
    immediate = announcement.send_at == announcement.created_at
    if not immediate:
        check_send_at(announcement.send_at, now, by.tz)
    changed = session.execute(
        update(Announcement)
        .where(col(Announcement.id) == announcement_id, col(Announcement.state) == DRAFT)
        .values(state=SCHEDULED, send_at=now if immediate else announcement.send_at)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:  # a second press that raced the first
        raise UserError(f"{label(announcement_id)} was already confirmed.")
    session.refresh(announcement)
    _audit_created(session, announcement, now, source)
    return announcement


def _audit_created(session: Session, announcement: Announcement, now: datetime, source: str) -> None:
    audit.record(
        session,
        at=now,
        actor_id=announcement.author_id,
        action="announcement.created",
        entity="announcement",
        entity_id=announcement.id or 0,
        source=source,
        audience=f"{announcement.audience_kind}:{announcement.audience}",
        send_at=announcement.send_at.isoformat(),
        ask_ack=announcement.ask_ack,
    )


def set_status_message(session: Session, announcement_id: int, channel: str, ts: str) -> None:
    session.execute(
        update(Announcement)
        .where(col(Announcement.id) == announcement_id)
        .values(status_channel=channel, status_ts=ts)
        .execution_options(synchronize_session=False)
    )


def label(announcement_id: int) -> str:
    return f"A-{announcement_id}"


# ---- going out -----------------------------------------------------------------------------------


def due(session: Session, now: datetime) -> list[Announcement]:
    return list(
        session.exec(
            select(Announcement)
            .where(col(Announcement.state) == SCHEDULED, col(Announcement.send_at) <= now)
            .order_by(col(Announcement.id))
        )
    )


def materialize(
    session: Session, announcement_id: int, now: datetime, workspace: Iterable[Profile] | None = None
) -> bool:
    """Move a due announcement to `sending` and write its outbox, in one transaction: either every
    row exists or none does. Only one caller wins (the scheduled job, a restart's catch-up, a
    second process); the others get False. `workspace` is Slack's member list, for "everyone"."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None:
        return False
    audience = Audience.of(announcement)
    if audience.kind == CHANNELS:
        kind, targets = POST, list(audience.ids)
    elif audience.kind == SKILLS:
        kind, targets = DM, skill_members(session, audience.ids)
    else:
        if workspace is None:
            raise ValueError("an announcement to everyone needs the workspace's members")
        kind, targets = DM, reachable(workspace)
    won = session.execute(
        update(Announcement)
        .where(
            col(Announcement.id) == announcement_id,
            col(Announcement.state) == SCHEDULED,
            col(Announcement.send_at) <= now,
        )
        .values(state=SENDING, started_at=now, total=len(targets))
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not won:
        return False
    if targets:
        session.execute(
            insert(AnnouncementDelivery),
            [
                {
                    "announcement_id": announcement_id,
                    "kind": kind,
                    "target": target,
                    "state": PENDING,
                    "attempts": 0,
                    "last_error": "",
                }
                for target in targets
            ],
        )
    return True


def running(session: Session) -> list[int]:
    """Announcements whose outbox may still hold work: sending, or cancelled while sending."""
    return list(
        session.exec(
            select(Announcement.id)  # type: ignore[arg-type]  # sqlmodel types an id as optional
            .where(col(Announcement.state).in_([SENDING, CANCELLED]), col(Announcement.finished_at).is_(None))
            .order_by(col(Announcement.id))
        )
    )


def pending_after(session: Session, announcement_id: int, after_id: int, limit: int) -> list[int]:
    return list(
        session.exec(
            select(AnnouncementDelivery.id)  # type: ignore[arg-type]  # sqlmodel types an id as optional
            .where(
                col(AnnouncementDelivery.announcement_id) == announcement_id,
                col(AnnouncementDelivery.state) == PENDING,
                col(AnnouncementDelivery.id) > after_id,
            )
            .order_by(col(AnnouncementDelivery.id))
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    announcement_id: int
    kind: str
    target: str
    attempts: int


# The two statements every message runs, built once: at hundreds of messages a second, building
# them per call (and the ORM's bulk-update path) cost more CPU than Slack's own HTTP round trip.
_deliveries = AnnouncementDelivery.__table__  # type: ignore[attr-defined]
_CLAIM = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("delivery_id"), _deliveries.c.state == PENDING)
    .values(
        state=CLAIMED,
        attempts=_deliveries.c.attempts + 1,
        claimed_by=bindparam("worker"),
        claimed_at=bindparam("now"),
    )
    .returning(
        _deliveries.c.announcement_id, _deliveries.c.kind, _deliveries.c.target, _deliveries.c.attempts
    )
)
_MARK_SENT = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("delivery_id"), _deliveries.c.state == CLAIMED)
    .values(
        state=SENT,
        sent_at=bindparam("now"),
        channel_id=bindparam("channel"),
        message_ts=bindparam("ts"),
    )
)


def claim(session: Session, delivery_id: int, worker: str, now: datetime) -> Claim | None:
    """Take a pending row for sending (committed before the API call); None when another worker
    took it first or it was cancelled."""
    row = (
        session.connection()
        .execute(_CLAIM, {"delivery_id": delivery_id, "worker": worker, "now": now})
        .first()
    )
    if row is None:
        return None
    return Claim(delivery_id, row[0], row[1], row[2], row[3])


def mark_sent(session: Session, delivery_id: int, channel_id: str, ts: str, now: datetime) -> bool:
    result = session.connection().execute(
        _MARK_SENT, {"delivery_id": delivery_id, "now": now, "channel": channel_id, "ts": ts}
    )
    return bool(result.rowcount)


def _settle(session: Session, delivery_id: int, **values: object) -> bool:
    return bool(
        session.execute(
            update(AnnouncementDelivery)
            .where(col(AnnouncementDelivery.id) == delivery_id, col(AnnouncementDelivery.state) == CLAIMED)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def mark_failed(session: Session, delivery_id: int, error: str) -> bool:
    return _settle(session, delivery_id, state=FAILED, last_error=error[:100])


def release(session: Session, delivery_id: int, error: str, refund_attempt: bool = False) -> bool:
    """Back to pending after a call that certainly did not post (or was checked and had not):
    it will be sent again. A rate-limited call does not count as an attempt."""
    values: dict[str, object] = {"state": PENDING, "last_error": error[:100], "claimed_by": None}
    if refund_attempt:
        values["attempts"] = AnnouncementDelivery.attempts - 1  # type: ignore[operator]
    return _settle(session, delivery_id, **values)


def in_doubt(session: Session, announcement_ids: Iterable[int], not_claimed_by: str) -> list[int]:
    """Rows claimed by another (dead) sender: the call may or may not have reached Slack."""
    ids = list(announcement_ids)
    if not ids:
        return []
    return list(
        session.exec(
            select(AnnouncementDelivery.id)  # type: ignore[arg-type]  # sqlmodel types an id as optional
            .where(
                col(AnnouncementDelivery.announcement_id).in_(ids),
                col(AnnouncementDelivery.state) == CLAIMED,
                col(AnnouncementDelivery.claimed_by) != not_claimed_by,
            )
            .order_by(col(AnnouncementDelivery.id))
        )
    )


def note_error(session: Session, delivery_id: int, error: str) -> None:
    """Remember why a claimed row is in doubt, while it stays claimed until it is checked."""
    _settle(session, delivery_id, last_error=error[:100])


def delivery(session: Session, delivery_id: int) -> AnnouncementDelivery | None:
    return session.get(AnnouncementDelivery, delivery_id)


def finish_if_complete(session: Session, announcement_id: int, now: datetime) -> bool:
    """Close an announcement whose outbox holds nothing pending or under way: `sending` becomes
    `done`; a cancelled one gets its finish time. True for the one caller that closed it."""
    open_rows = exists().where(
        col(AnnouncementDelivery.announcement_id) == announcement_id,
        col(AnnouncementDelivery.state).in_([PENDING, CLAIMED]),
    )
    closed = 0
    for before, after in ((SENDING, DONE), (CANCELLED, CANCELLED)):
        closed += session.execute(
            update(Announcement)
            .where(
                col(Announcement.id) == announcement_id,
                col(Announcement.state) == before,
                col(Announcement.finished_at).is_(None),
                ~open_rows,
            )
            .values(state=after, finished_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return bool(closed)


# ---- cancelling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cancelled:
    announcement: Announcement
    was: str
    stopped: int


def cancel(session: Session, announcement_id: int, by: Actor, now: datetime, source: str) -> Cancelled:
    """Stop what has not been sent: a scheduled announcement never goes out; a running one sends
    nothing more (a message already handed to Slack still lands). Any lead may cancel."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None or announcement.state == DRAFT:
        raise UserError(f"There is no announcement {label(announcement_id)}. `/announce list` shows them.")
    was = announcement.state
    if was in (DONE, CANCELLED):
        raise UserError(
            f"{label(announcement_id)} is already {'finished' if was == DONE else 'cancelled'}: nothing left to stop."
        )
    changed = session.execute(
        update(Announcement)
        .where(col(Announcement.id) == announcement_id, col(Announcement.state) == was)
        .values(
            state=CANCELLED,
            cancelled_by=by.user_id,
            # A scheduled one is finished at once; a running one when its last claimed message settles.
            finished_at=now if was == SCHEDULED else None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        # It moved on (it just started sending) between our read and write: decide again.
        session.expire(announcement)
        return cancel(session, announcement_id, by, now, source)
    stopped = session.execute(
        update(AnnouncementDelivery)
        .where(
            col(AnnouncementDelivery.announcement_id) == announcement_id,
            col(AnnouncementDelivery.state) == PENDING,
        )
        .values(state=CANCELLED)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    audit.record(
        session,
        at=now,
        actor_id=by.user_id,
        action="announcement.cancelled",
        entity="announcement",
        entity_id=announcement_id,
        source=source,
        was=was,
        stopped=stopped,
    )
    session.refresh(announcement)
    return Cancelled(announcement, was, stopped)


# ---- acknowledgements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Acked:
    announcement: Announcement
    new: bool
    at: datetime
    refresh_at: datetime | None  # set when this ack must schedule the (debounced) count update


def is_recipient(session: Session, announcement_id: int, user_id: str, channel_id: str | None) -> bool:
    """Whether this announcement reached `user_id` by DM, or was posted in `channel_id`."""
    delivered = (
        col(AnnouncementDelivery.announcement_id) == announcement_id,
        col(AnnouncementDelivery.state).in_([SENT, CLAIMED]),
        or_(
            and_(col(AnnouncementDelivery.kind) == DM, col(AnnouncementDelivery.target) == user_id),
            and_(col(AnnouncementDelivery.kind) == POST, col(AnnouncementDelivery.channel_id) == channel_id),
        ),
    )
    return session.exec(select(AnnouncementDelivery.id).where(*delivered).limit(1)).first() is not None


def acknowledge(
    session: Session,
    announcement_id: int,
    user_id: str,
    now: datetime,
    debounce: timedelta,
    channel_id: str | None = None,
) -> Acked:
    """Count a member's Got it once. The first new ack after a count update asks for the next
    update `debounce` from now; acks until then ride along with it."""
    announcement = session.get(Announcement, announcement_id)
    if announcement is None or announcement.state == DRAFT:
        raise UserError("That announcement no longer exists.")
    if not announcement.ask_ack:
        raise UserError(f"{label(announcement_id)} doesn't ask for acknowledgement.")
    if not is_recipient(session, announcement_id, user_id, channel_id):
        # A Got it can only come from a copy of this announcement: the reader's own DM, or a post
        # in a channel it went to (Slack's payload says where the click came from; the button's
        # value only says which announcement, and can be forged).
        raise UserError(
            f"{label(announcement_id)} wasn't sent to you here, so there is nothing to acknowledge."
        )
    new = insert_ignore(
        session, AnnouncementAck, {"announcement_id": announcement_id, "user_id": user_id, "at": now}
    )
    if not new:
        ack = session.get(AnnouncementAck, (announcement_id, user_id))
        return Acked(announcement, False, ack.at if ack else now, None)
    refresh_at = now + debounce
    first = session.execute(
        update(Announcement)
        .where(
            col(Announcement.id) == announcement_id,
            # An update already asked for is pending; one overdue was lost (a crash before its
            # job was stored) and is asked for again.
            or_(col(Announcement.ack_refresh_at).is_(None), col(Announcement.ack_refresh_at) < now),
        )
        .values(ack_refresh_at=refresh_at)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return Acked(announcement, True, now, refresh_at if first else None)


def take_ack_refresh(session: Session, announcement_id: int) -> None:
    """The count update is running: acks from here on ask for another one."""
    session.execute(
        update(Announcement)
        .where(col(Announcement.id) == announcement_id)
        .values(ack_refresh_at=None)
        .execution_options(synchronize_session=False)
    )


def ack_count(session: Session, announcement_id: int) -> int:
    return int(
        session.exec(
            select(func.count()).where(col(AnnouncementAck.announcement_id) == announcement_id)
        ).one()
    )


def channel_posts(session: Session, announcement_id: int) -> list[tuple[str, str]]:
    rows = session.exec(
        select(AnnouncementDelivery.channel_id, AnnouncementDelivery.message_ts).where(
            col(AnnouncementDelivery.announcement_id) == announcement_id,
            col(AnnouncementDelivery.kind) == POST,
            col(AnnouncementDelivery.state) == SENT,
        )
    )
    return [(c, t) for c, t in rows if c and t]


# ---- progress and reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    announcement: Announcement
    total: int
    sent: int = 0
    failed: int = 0
    pending: int = 0
    sending: int = 0
    cancelled: int = 0
    acknowledged: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.sent + self.failed + self.cancelled

    @property
    def key(self) -> tuple[object, ...]:
        """What a status card shows: redraw only when it changed."""
        a = self.announcement
        return (
            a.state,
            self.sent,
            self.failed,
            self.pending,
            self.sending,
            self.cancelled,
            self.acknowledged,
        )


def progress(session: Session, announcement_id: int) -> Progress | None:
    announcement = session.get(Announcement, announcement_id)
    if announcement is None:
        return None
    counts = dict(
        session.exec(
            select(AnnouncementDelivery.state, func.count())
            .where(col(AnnouncementDelivery.announcement_id) == announcement_id)
            .group_by(col(AnnouncementDelivery.state))
        ).all()
    )
    failures = dict(
        session.exec(
            select(AnnouncementDelivery.last_error, func.count())
            .where(
                and_(
                    col(AnnouncementDelivery.announcement_id) == announcement_id,
                    col(AnnouncementDelivery.state) == FAILED,
                )
            )
            .group_by(col(AnnouncementDelivery.last_error))
        ).all()
    )
    return Progress(
        announcement=announcement,
        total=announcement.total,
        sent=counts.get(SENT, 0),
        failed=counts.get(FAILED, 0),
        pending=counts.get(PENDING, 0),
        sending=counts.get(CLAIMED, 0),
        cancelled=counts.get(CANCELLED, 0),
        acknowledged=ack_count(session, announcement_id),
        failures={k or "unknown": v for k, v in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))},
    )


RECENT = timedelta(days=7)


def listing(session: Session, now: datetime, offset: int, limit: int) -> tuple[list[int], bool]:
    """Scheduled and running announcements first (soonest first), then those finished in the last
    week (latest first). Returns one page of ids and whether there are more."""
    active = list(
        session.exec(
            select(Announcement.id)  # type: ignore[arg-type]  # sqlmodel types an id as optional
            .where(
                col(Announcement.state).in_([SCHEDULED, SENDING, CANCELLED]),
                col(Announcement.finished_at).is_(None),
            )
            .order_by(col(Announcement.send_at), col(Announcement.id))
        )
    )
    recent = list(
        session.exec(
            select(Announcement.id)  # type: ignore[arg-type]  # sqlmodel types an id as optional
            .where(col(Announcement.finished_at) >= now - RECENT)
            .order_by(col(Announcement.finished_at).desc(), col(Announcement.id).desc())
        )
    )
    ids = [i for i in active + recent if i is not None]
    return ids[offset : offset + limit], len(ids) > offset + limit
