"""Separation of duties on pay: nobody approves their own pay.

A lead's own submitted work, their own flagged time and the bonus for their own referral are
approved by another lead or an admin. Every approval that moves money records who gave it (a column
on the record and its audit entry); this is the one place the rule is checked, by `domain.tasks`,
`domain.hours` and `domain.referrals`.
"""

from __future__ import annotations

from core.authz import Actor
from core.errors import Forbidden


def separate_duties(approver: Actor, payee_id: str, what: str, how: str) -> None:
    """Refuse when the member approving `what` is the member it pays. `how` is the command another
    lead or an admin would use."""
    if approver.user_id == payee_id:
        raise Forbidden(
            f"Nobody approves their own pay: {what} is yours, so another lead or an admin reviews it "
            f"(`{how}`). Nothing changed."
        )
