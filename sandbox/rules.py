"""Slack's Web API rules the fake enforces besides Block Kit: which methods exist and which
arguments they take (slack_sdk's own `WebClient` signatures), which OAuth scope each method needs
(checked against `manifest.yaml`), and each method's rate-limit tier.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import yaml
from slack_sdk import WebClient

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yaml"

#: Arguments every method takes besides its own.
COMMON_ARGUMENTS = frozenset({"token"})

#: The scope a method needs; a callable picks it from the params (conversations.* by channel type).
_BY_CHANNEL = {"C": "channels", "G": "groups", "D": "im"}


def _conversation_scope(kind: str) -> Any:
    def pick(params: dict[str, Any]) -> str:
        prefix = _BY_CHANNEL.get(str(params.get("channel", "C"))[:1], "channels")
        return f"{prefix}:{kind}"

    return pick


METHOD_SCOPES: dict[str, Any] = {
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "chat.scheduleMessage": "chat:write",
    "conversations.open": "im:write",
    "conversations.history": _conversation_scope("history"),
    "conversations.replies": _conversation_scope("history"),
    "conversations.info": _conversation_scope("read"),
    "conversations.members": _conversation_scope("read"),
    "conversations.join": "channels:join",
    "conversations.list": "channels:read",
    "users.info": "users:read",
    "users.list": "users:read",
    "users.lookupByEmail": "users:read.email",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "files.upload": "files:write",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
}

#: Slack's rate-limit tiers, calls per minute per workspace (chat.postMessage has its own limit:
#: about one message a second per channel).
TIER_PER_MIN = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS = {
    "auth.test": 4,
    "chat.postEphemeral": 4,
    "chat.update": 3,
    "chat.delete": 3,
    "chat.getPermalink": 4,
    "conversations.open": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.info": 3,
    "conversations.members": 4,
    "conversations.join": 3,
    "users.info": 4,
    "users.list": 2,
    "users.lookupByEmail": 3,
    "views.open": 4,
    "views.push": 4,
    "views.update": 4,
    "views.publish": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
    "reactions.add": 3,
}


@functools.cache
def known_arguments(method: str) -> frozenset[str] | None:
    """The arguments slack_sdk's WebClient method for `method` declares; None for a method it
    doesn't know (Slack answers `unknown_method`)."""
    impl = getattr(WebClient, method.replace(".", "_"), None)
    if impl is None or not callable(impl):
        return None
    names = [
        p.name
        for p in inspect.signature(impl).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return frozenset(names) - {"self"} | COMMON_ARGUMENTS


def unknown_arguments(method: str, params: dict[str, Any]) -> list[str]:
    known = known_arguments(method)
    if known is None:
        return []
    return sorted(k for k in params if k not in known and not k.startswith("_"))


def required_scope(method: str, params: dict[str, Any]) -> str | None:
    scope = METHOD_SCOPES.get(method)
    return scope(params) if callable(scope) else scope


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str] | None:
    """The bot scopes `manifest.yaml` asks for; None when there is no manifest (no scope check)."""
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return frozenset(data.get("oauth_config", {}).get("scopes", {}).get("bot", []) or [])


def slash_commands(path: Path = MANIFEST) -> list[dict[str, str]]:
    """The manifest's slash commands with their descriptions and usage hints (the composer's
    autocomplete)."""
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [
        {
            "command": c["command"],
            "description": c.get("description", ""),
            "usage_hint": c.get("usage_hint", ""),
        }
        for c in data.get("features", {}).get("slash_commands", []) or []
    ]
