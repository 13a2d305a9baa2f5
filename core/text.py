"""Text people typed, made safe to show and to export: the one escaping helper every view uses, the
one reader of Slack-formatted text, and the one guard for spreadsheet cells.

Text is stored as the member meant it (plain characters). `from_slack` turns what Slack sends for
slash commands and message events (`should_escape`: `&amp;`, `<!channel>`, `<@U1|ana>`,
`<https://x|label>`) into that plain text once, when it is parsed; `escape` makes it literal mrkdwn
once, when it is rendered. So nothing is escaped twice, and nothing typed ever becomes markup.
"""

from __future__ import annotations

import re

_SLACK_MARKUP = re.compile(r"<([^<>]*)>")


def escape(text: str) -> str:
    """Text as literal mrkdwn: `<!channel>`, `<@U…>` or `<https://…|label>` shows as typed and never
    pings or links in disguise. Slack needs exactly `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("!"):
        # <!channel>, <!here>, <!everyone>, <!subteam^S1|@team>, <!date^…|fallback>
        if target.startswith(("!subteam^", "!date^")):
            return label or "@" + target[1:].split("^", 1)[0]
        return "@" + target[1:]
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("mailto:"):
        return target[len("mailto:") :]
    # A link shows as its plain URL, never under a label that could disguise it.
    return target


def from_slack(text: str) -> str:
    """Slack-formatted text as the plain text its author saw: mentions as `@name`, channels as
    `#name`, links as their URL, and `&amp;`, `&lt;`, `&gt;` as the characters."""
    plain = _SLACK_MARKUP.sub(_plain, text or "")
    return plain.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value for a CSV cell that a spreadsheet shows as text: one starting like a formula
    (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading `'`. Every export goes through it."""
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text
