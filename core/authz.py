"""Who may do what: the one place where a role is checked.

Every command, button and modal declares the role it needs; the dispatchers in `handlers.kit.commands`
and `handlers.kit.interactions` call `authorize` before any handler runs, so no handler checks roles itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from core.errors import Forbidden


class Role(IntEnum):
    """Roles nest: an admin can do all a lead can, a lead all a contractor can."""

    CONTRACTOR = 0
    LEAD = 1
    ADMIN = 2

    @property
    def label(self) -> str:
        return {Role.CONTRACTOR: "contractor", Role.LEAD: "lead", Role.ADMIN: "admin"}[self]


_WHO_MAY = {
    Role.CONTRACTOR: "every member",
    Role.LEAD: "leads and admins",
    Role.ADMIN: "admins (listed in ADMIN_USER_IDS)",
}


@dataclass(frozen=True)
class Actor:
    """The member behind a request, as the domain sees them."""

    user_id: str
    role: Role = Role.CONTRACTOR
    skills: frozenset[str] = field(default_factory=frozenset)
    tz: str = "UTC"
    name: str = ""
    email: str | None = None

    @property
    def is_lead(self) -> bool:
        return self.role >= Role.LEAD

    def mention(self) -> str:
        return f"<@{self.user_id}>"


def role_for(user_id: str, is_lead: bool, admin_ids: frozenset[str]) -> Role:
    if user_id in admin_ids:
        return Role.ADMIN
    return Role.LEAD if is_lead else Role.CONTRACTOR


def authorize(actor: Actor, needed: Role, what: str) -> None:
    """Raise Forbidden, saying who may do it, unless the actor's role is enough."""
    if actor.role < needed:
        raise Forbidden(f"Only {_WHO_MAY[needed]} can {what}. You are a {actor.role.label}.")


def authorize_vetting(actor: Actor, skill: str, applicant_id: str) -> None:
    """Who may decide an application for `skill`: a lead who holds that skill themselves, or an
    admin; never the applicant."""
    if actor.user_id == applicant_id:
        raise Forbidden("You can't decide your own application; another lead will.")
    authorize(actor, Role.LEAD, "vet skill applications")
    if actor.role < Role.ADMIN and skill not in actor.skills:
        raise Forbidden(
            f"Only leads who hold `{skill}` themselves, and admins, can vet applications for it. "
            "Nothing changed."
        )
