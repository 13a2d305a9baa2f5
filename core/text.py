"""Text people typed, made safe to show: the one escaping helper every view uses."""

from __future__ import annotations

import re


def escape(text: str) -> str:
    """Text as literal mrkdwn: `<!channel>`, `<@U…>` or `<https://…|label>` shows as typed and never
    pings or links in disguise. Slack needs exactly `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|[^>]*)?>")


def as_typed(text: str) -> str:
    """Slash command text (sent with should_escape) back as the member typed it: links unwrapped
    from Slack's `<url|label>` markup, `&amp;` `&lt;` `&gt;` restored. Escape it again to show it."""
    text = _SLACK_LINK.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
