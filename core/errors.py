"""Errors that end a user's request with a friendly, specific message and change nothing."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a refused action: the message is shown to the user (ephemeral), as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(UserError):
    """The command text does not fit its grammar; `usage` is the line of help that applies."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class Forbidden(UserError):
    """The member's role does not allow the action."""
