"""Member profile rendering."""

from __future__ import annotations

from core.authz import Actor
from core.text import escape
from views.blocks import Block, context, fields, section


def profile_blocks(actor: Actor) -> list[Block]:
    skills = ", ".join(f"`{s}`" for s in sorted(actor.skills)) or "_none yet: a lead vets and adds them_"
    return [
        section(f"*{escape(actor.name) if actor.name else actor.mention()}*"),
        fields(
            ("Role", actor.role.label),
            ("Timezone", actor.tz),
            ("Skills", skills),
            ("Email", escape(actor.email or "—")),
        ),
        context("Your timezone and email come from your Slack profile. Skills are set by leads."),
    ]
