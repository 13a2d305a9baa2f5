"""What Slack tells us about a person, as the rest of crewcall sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """What Slack's users.info tells us about a person."""

    user_id: str
    name: str
    real_name: str
    tz: str
    email: str | None
    is_bot: bool = False
    deleted: bool = False
