"""Small Block Kit builders that keep every message inside Slack's limits.

Limits (Slack's): 50 blocks in a message, 100 in a modal or Home view, 3,000 characters in a
section's text, 75 in a button's text, 2,000 in a button's value, 150 in a header, 24 in a modal title.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
BUTTON_TEXT = 75
HEADER_TEXT = 150
MODAL_TITLE = 24

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain(text: str, limit: int = 2000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def section(text: str, accessory: dict[str, Any] | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text or " ")}
    if accessory:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def sections(lines: Sequence[str], separator: str = "\n", limit: int = 2800) -> list[Block]:
    """Lines packed into as few sections as fit, each under Slack's section text limit."""
    blocks: list[Block] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and sum(len(c) + len(separator) for c in chunk) + len(line) > limit:
            blocks.append(section(separator.join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section(separator.join(chunk)))
    return blocks


def fields(*pairs: tuple[str, str]) -> Block:
    """A section of up to 10 short `*label*\\nvalue` fields."""
    return {"type": "section", "fields": [mrkdwn(f"*{k}*\n{v}", 2000) for k, v in pairs[:10]]}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t, 3000) for t in texts[:10]]}


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str | None = None,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(text, BUTTON_TEXT), "action_id": action_id}
    if value is not None:
        element["value"] = value[:2000]
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, yes: str = "Yes", no: str = "Cancel") -> dict[str, Any]:
    return {
        "title": plain(title, 100),
        "text": mrkdwn(text, 300),
        "confirm": plain(yes, 30),
        "deny": plain(no, 30),
    }


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def fit_message(
    blocks: list[Block], more_note: str = "…and more. Narrow the list to see the rest."
) -> list[Block]:
    """Keep a message inside 50 blocks, saying so when something was left out."""
    if len(blocks) <= MESSAGE_BLOCKS:
        return blocks
    return blocks[: MESSAGE_BLOCKS - 1] + [context(more_note)]


def fit_view(blocks: list[Block]) -> list[Block]:
    if len(blocks) <= VIEW_BLOCKS:
        return blocks
    return blocks[: VIEW_BLOCKS - 1] + [context("…and more.")]


def modal(
    callback_id: str,
    title: str,
    blocks: list[Block],
    submit: str | None = "Submit",
    private_metadata: str = "",
    close: str = "Cancel",
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, MODAL_TITLE),
        "close": plain(close, 24),
        "blocks": fit_view(blocks),
        "private_metadata": private_metadata[:3000],
    }
    if submit:
        view["submit"] = plain(submit, 24)
    return view


def text_input(
    block_id: str,
    label: str,
    placeholder: str = "",
    multiline: bool = False,
    optional: bool = False,
    initial: str | None = None,
    max_length: int | None = None,
    hint: str | None = None,
) -> Block:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
    if placeholder:
        element["placeholder"] = plain(placeholder, 150)
    if initial:
        element["initial_value"] = initial
    if max_length:
        element["max_length"] = max_length
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text, 75), "value": value[:150]}


def slack_date(when: datetime, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A time every reader sees in their own timezone (Slack's date token), with a UTC fallback."""
    epoch = int(when.timestamp())
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{fmt}|{fallback}>"


def local_time(when: datetime, tz: str, fmt: str = "%a %d %b, %H:%M") -> str:
    """A time in a member's own timezone, for DMs: `Mon 05 Jan, 09:00 EST`."""
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    local = when.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()}"


def slow_down(what: str, retry_at: datetime) -> str:
    """A member over their fair share: what they did too often, and when they may again."""
    return (
        f":hourglass: You're sending {what} faster than I can keep up with for everyone. "
        f"Try again at {slack_date(retry_at, '{time_secs}')}. Nothing was done."
    )
