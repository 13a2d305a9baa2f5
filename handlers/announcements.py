"""/announce: leads broadcast to channels, to members with a skill, or to everyone; Got it buttons."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.authz import Role
from core.errors import UserError
from core.grammar import (
    LOCAL_DATETIME,
    SKILLS,
    TEXT,
    Kind,
    choice,
    parse_channel,
    parse_skills,
    record_id,
    tokenize,
)
from core.slack import SlackFailure
from core.text import from_slack
from domain import announcements
from domain.announcements import CHANNELS, EVERYONE, SCHEDULED, Audience, label
from domain.announcements import SKILLS as SKILL_AUDIENCE
from handlers.kit.commands import Args, Option, Param, SlashCommand
from handlers.kit.context import Ctx, ViewValues
from handlers.kit.interactions import OFFSET, ButtonReader, FieldErrors, Then, button, modal
from jobs.announcements import (
    ACK_DEBOUNCE,
    launch,
    publish_status,
    schedule_ack_refresh,
    send_job_id,
)
from views.announcements import (
    ACK_ACTION,
    COMPOSE_CALLBACK,
    CONFIRM_CALLBACK,
    MORE_ACTION,
    compose_modal,
    created_reply,
    fallback_text,
    list_blocks,
    message_blocks,
    preview_modal,
)
from views.blocks import local_time

if TYPE_CHECKING:
    from handlers.kit.app import CrewApp

LIST_PAGE = 10

announce = SlashCommand(
    "/announce",
    "Announcements to channels, members with a skill, or everyone",
    description=(
        "`/announce` alone opens a form with a preview. A channel gets one post carrying your name and a "
        "*Got it* button; a skill or everyone means a DM to each person. Add `at=2026-03-16T09:00` (your "
        "timezone) to schedule it, `ack=no` to leave out the Got it button."
    ),
)

MESSAGE = Kind("#channel(s) message", str)
SEND_OPTIONS = [Option("at", LOCAL_DATETIME), Option("ack", choice("yes", "no"), default="yes")]
SEND_ACTION = "send announcements"
ANNOUNCEMENT = record_id("A", "announcement")
ACK_BUTTON = ButtonReader("Nothing was recorded.")
LIST_BUTTON = ButtonReader("Type `/announce list` to see the announcements.")


@announce.sub(
    "",
    "Post in channels (`/announce #team text`) or DM the members with a skill (`/announce skill=legal text`)",
    params=[Param("message", MESSAGE, required=False, rest=True)],
    options=[Option("skill", SKILLS), *SEND_OPTIONS],
    role=Role.LEAD,
    action=SEND_ACTION,
)
def compose(ctx: Ctx, args: Args) -> None:
    if not ctx.request.text.strip():
        _open_form(ctx)
        return
    channels, raw = split_channels(args.get("message", ""))
    text = from_slack(raw)
    if channels and args.skill:
        raise UserError("Pick one audience: #channels or skill=…, not both.")
    if channels:
        audience = Audience.channels(channels)
    elif args.skill:
        audience = Audience.skills(args.skill)
    else:
        raise UserError(
            "Who is it for? Start with a #channel, add skill=…, or use `/announce everyone …`. "
            "`/announce` alone opens the form."
        )
    _send(ctx, audience, text, args.at, args.ack)


@announce.sub(
    "everyone",
    "DM every member of the workspace",
    params=[Param("message", TEXT, rest=True)],
    options=SEND_OPTIONS,
    role=Role.LEAD,
    action=SEND_ACTION,
)
def everyone(ctx: Ctx, args: Args) -> None:
    _send(ctx, Audience.everyone(), args.message, args.at, args.ack)


@announce.sub(
    "list",
    "Scheduled and running announcements with their progress, and this week's reports",
    role=Role.LEAD,
    action="see announcements",
)
def list_announcements(ctx: Ctx, args: Args) -> None:
    _show_list(ctx, 0)


@announce.sub(
    "cancel",
    "Stop an announcement: nothing more of it is sent",
    params=[Param("announcement", ANNOUNCEMENT)],
    role=Role.LEAD,
    action="cancel announcements",
)
def cancel(ctx: Ctx, args: Args) -> None:
    with ctx.write() as session:
        result = announcements.cancel(session, args.announcement, ctx.actor, ctx.now, ctx.source)
        progress = announcements.progress(session, args.announcement)
    aid = label(args.announcement)
    if result.was == SCHEDULED:
        ctx.services.scheduler.remove(send_job_id(args.announcement))
        ctx.reply(f":no_entry_sign: {aid} is cancelled: it will not go out.")
    else:
        sent = progress.sent if progress else 0
        ctx.reply(
            f":no_entry_sign: {aid} is cancelled: {result.stopped:,} message(s) will not be sent; "
            f"{sent:,} had gone out already (any under way this instant still land)."
        )
    publish_status(ctx.services, args.announcement)


def split_channels(message: str) -> tuple[list[str], str]:
    """The channel mentions the message starts with, and the message after them (as typed)."""
    channels: list[str] = []
    rest = message
    for token in tokenize(message):
        if not token.text.startswith(("<#", "#")):
            rest = message[token.start :]
            break
        channels.append(parse_channel(token.text))
    else:
        rest = ""
    return channels, rest.strip()


def _send(ctx: Ctx, audience: Audience, text: str, at: datetime | None, ack: str) -> None:
    send_at = announcements.local_send_time(at, ctx.actor.tz, ctx.now) if at else None
    announcements.check_text(text)
    if audience.kind == CHANNELS:
        _check_channels(ctx, audience.ids)
    with ctx.write() as session:
        announcement = announcements.create(
            session,
            by=ctx.actor,
            text=text,
            audience=audience,
            ask_ack=ack == "yes",
            send_at=send_at,
            now=ctx.now,
            source=ctx.source,
        )
        recipients = announcements.estimate(session, audience)
    launch(ctx.services, announcement)
    ctx.reply(*created_reply(announcement, recipients, scheduled=send_at is not None))


def _check_channels(ctx: Ctx, channels: tuple[str, ...]) -> None:
    """Refuse, before anything is saved, a channel the bot cannot post in."""
    for channel in channels:
        try:
            info = ctx.services.slack.call("conversations.info", channel=channel)["channel"]
        except SlackFailure as e:
            if e.error == "channel_not_found":
                raise UserError(
                    f"I can't see <#{channel}>: check the channel, or invite me to it (`/invite @crewcall`)."
                ) from None
            raise UserError(
                f"I couldn't check <#{channel}> with Slack ({e.error}). Try again in a moment."
            ) from None
        if info.get("is_archived"):
            raise UserError(f"<#{channel}> is archived: nobody would read it there.")
        if info.get("is_private") and not info.get("is_member") and not info.get("is_im"):
            raise UserError(
                f"<#{channel}> is private and I'm not in it: invite me first (`/invite @crewcall`)."
            )
        if info.get("is_im") or info.get("is_mpim"):
            raise UserError("Announcements go to channels, not to direct messages.")


def _open_form(ctx: Ctx) -> None:
    with ctx.read() as session:
        known = announcements.known_skills(session)
    ctx.open_modal(compose_modal(ctx.origin_metadata(), known))


def composed(ctx: Ctx, values: ViewValues) -> dict[str, Any]:
    """The form was submitted: check every field (errors shown under them), save a draft and
    show the preview."""
    form = values.form()
    text = form.check("text", announcements.check_text, values.text("text"))
    kind = values.selected("audience")
    field = {CHANNELS: "channels", SKILL_AUDIENCE: "skills"}.get(kind or "", "audience")
    audience = form.check(field, _audience_from_form, ctx, values, kind)
    send_at = values.timestamp("send_at")
    if send_at is not None:
        form.check("send_at", announcements.check_send_at, send_at, ctx.now, ctx.actor.tz)
    form.done()
    try:
        with ctx.write() as session:
            draft = announcements.create(
                session,
                by=ctx.actor,
                text=text,
                audience=audience,
                ask_ack="ack" in values.selected_many("options"),
                send_at=send_at,
                now=ctx.now,
                source=ctx.source,
                draft=True,
            )
            recipients = announcements.estimate(session, audience)
    except UserError as e:
        raise FieldErrors({field if field != "audience" else "text": e.message}) from None
    return {"response_action": "update", "view": preview_modal(draft, recipients, ctx.request.metadata)}


def _audience_from_form(ctx: Ctx, values: ViewValues, kind: str | None) -> Audience:
    if kind == CHANNELS:  # whether the bot can post there is asked of Slack after the ack, on Send
        return Audience.channels(values.channels("channels"))
    if kind == SKILL_AUDIENCE:
        raw = values.text("skills")
        return Audience.skills(parse_skills(raw) if raw else [])
    if kind == EVERYONE:
        return Audience.everyone()
    raise UserError("Pick who it is for.")


def confirmed(ctx: Ctx, values: ViewValues) -> Then:
    """Send (or Schedule) on the preview: the modal closes at once, then the channels are checked
    with Slack and the announcement goes out."""
    announcement_id = ctx.request.metadata.get("announcement_id")
    if not isinstance(announcement_id, int):
        raise UserError("That preview has lost its draft. Start again with `/announce`.")
    return Then(lambda: _confirm(ctx, announcement_id))


def _confirm(ctx: Ctx, announcement_id: int) -> None:
    with ctx.read() as session:
        audience = Audience.of(announcements.get_draft(session, announcement_id, ctx.actor))
    if audience.kind == CHANNELS:
        _check_channels(ctx, audience.ids)
    with ctx.write() as session:
        announcement = announcements.confirm(session, announcement_id, ctx.actor, ctx.now, ctx.source)
        recipients = announcements.estimate(session, Audience.of(announcement))
    launch(ctx.services, announcement)
    ctx.reply(*created_reply(announcement, recipients, scheduled=announcement.send_at > ctx.now))


def acknowledged(ctx: Ctx, value: str) -> None:
    """Got it: counted once per person; the post's count is redrawn a few seconds later (one
    update for a burst of clicks); a DM shows the reader's acknowledgement instead of the button."""
    announcement_id = ACK_BUTTON.one(value, ANNOUNCEMENT)
    with ctx.write() as session:
        result = announcements.acknowledge(
            session, announcement_id, ctx.actor.user_id, ctx.now, ACK_DEBOUNCE, ctx.request.channel_id
        )
    if result.refresh_at is not None:
        schedule_ack_refresh(ctx.services, announcement_id, result.refresh_at)
    aid = label(announcement_id)
    if not result.new:
        ctx.reply(f"You already acknowledged {aid} ({local_time(result.at, ctx.actor.tz)}). Thanks!")
        return
    channel, ts = ctx.request.channel_id, ctx.request.message_ts
    if channel and channel.startswith("D") and ts:
        blocks = message_blocks(
            result.announcement, in_channel=False, acked_at=local_time(ctx.now, ctx.actor.tz)
        )
        ctx.services.slack.update(
            channel, ts, fallback_text(result.announcement), blocks, what="announcement DM"
        )
    ctx.reply(f":white_check_mark: Thanks: noted that you read {aid}.")


def more(ctx: Ctx, value: str) -> None:
    _show_list(ctx, LIST_BUTTON.one(value, OFFSET))


def _show_list(ctx: Ctx, offset: int) -> None:
    with ctx.read() as session:
        ids, has_more = announcements.listing(session, ctx.now, offset, LIST_PAGE)
        items = [p for p in (announcements.progress(session, i) for i in ids) if p is not None]
    blocks = list_blocks(items, ctx.actor.tz, offset + LIST_PAGE if has_more else None)
    ctx.reply(f"{len(items)} announcement(s)", blocks)


def register(app: CrewApp) -> None:
    app.commands.add(announce).register(app, app.services)
    modal(app, COMPOSE_CALLBACK, role=Role.LEAD, action=SEND_ACTION)(composed)
    modal(app, CONFIRM_CALLBACK, role=Role.LEAD, action=SEND_ACTION)(confirmed)
    button(app, ACK_ACTION)(acknowledged)
    button(app, MORE_ACTION, role=Role.LEAD, action="see announcements")(more)
