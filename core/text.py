"""Text people typed, made safe to show: the one escaping helper every view uses."""

from __future__ import annotations


def escape(text: str) -> str:
    """Text as literal mrkdwn: `<!channel>`, `<@U…>` or `<https://…|label>` shows as typed and never
    pings or links in disguise. Slack needs exactly `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value for a CSV cell that a spreadsheet shows as text: a cell starting like a formula
    (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
