"""Features working together through the HTTP door: hours tracked with /hours earn a referral bonus
once a lead approved them."""

from __future__ import annotations

from sqlmodel import select

from db.models import Referral
from sandbox.harness import BotHarness


def test_hours_clocked_with_slash_hours_make_a_hired_referral_eligible(bot: BotHarness) -> None:
    bot.fake.add_user("ULEAD", name="lena", tz="UTC")
    bot.fake.add_user("U1", name="ana", tz="Europe/Lisbon")
    bot.command("UADMIN", "/crew", "lead <@ULEAD>")
    assert "R-1" in bot.command("U1", "/refer", "gus@firm.example Gus").text
    gus = bot.fake.add_user("UGUS", name="gus", email="gus@firm.example", tz="America/Chicago")
    assert bot.driver is not None
    bot.driver.team_join(gus)
    bot.wait_dm("U1", "just joined the workspace")
    for status in ("applied", "interviewing", "hired"):
        bot.command("ULEAD", "/referrals", f"set R-1 {status}")

    bot.command("UGUS", "/hours", "in")
    bot.clock.advance(hours=6)
    bot.command("UGUS", "/hours", "out")
    bot.command("UGUS", "/hours", "in")
    bot.clock.advance(hours=4)
    bot.command("UGUS", "/hours", "out")
    # Time on no task counts toward the bonus once a lead reviewed it.
    with bot.services.db.write() as session:
        assert session.exec(select(Referral.status)).one() == "hired"
    for entry in ("E-1", "E-2"):
        assert "Approved" in bot.command("ULEAD", "/hours", f"approve {entry}").text

    bot.wait_dm("U1", "has tracked 10 hours, so your $250 referral bonus is earned")
    with bot.services.db.write() as session:
        assert session.exec(select(Referral.status)).one() == "eligible"
