"""Text people typed, made safe to show: the one escaping helper every view uses."""

from __future__ import annotations


def escape(text: str) -> str:
    """Text as literal mrkdwn: `<!channel>`, `<@U…>` or `<https://…|label>` shows as typed and never
    pings or links in disguise. Slack needs exactly `&`, `<` and `>` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
