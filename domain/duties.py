"""Separation of duties on pay: nobody approves their own pay, nor the pay of someone they referred.

A lead's own submitted work, their own flagged time and the bonus for their own referral are
approved by another lead or an admin. So is everything that pays a member the lead referred (their
referral is linked to that member): the member's work and time count toward the lead's referral
reward (a share of that pay, or the hours that make a flat bonus eligible), and the `hired` / `paid`
steps of the member's own referrals pay the member. Every approval that moves money records who gave
it (a column on the record and its audit entry); this is the one place the rule is checked, by
`domain.tasks`, `domain.hours` and `domain.referrals`.
"""

from __future__ import annotations

from sqlmodel import Session, select

from core.authz import Actor
from core.errors import Forbidden
from db.models import Referral


def separate_duties(session: Session, approver: Actor, payee_id: str, what: str, how: str) -> None:
    """Refuse when the member approving `what` is the member it pays (`how`: the command another
    lead or an admin would use), or referred that member."""
    if approver.user_id == payee_id:
        raise Forbidden(
            f"Nobody approves their own pay: {what} is yours, so another lead or an admin reviews it "
            f"(`{how}`). Nothing changed."
        )
    referred = session.exec(
        select(Referral.id).where(
            Referral.referrer_id == approver.user_id, Referral.referee_user_id == payee_id
        )
    ).first()
    if referred is not None:
        raise Forbidden(
            f"Nobody approves the pay of someone they referred: {what} pays <@{payee_id}>, whom you "
            f"referred (R-{referred}), so another lead or an admin reviews it. Nothing changed."
        )
