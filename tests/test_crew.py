"""/crew through the HTTP endpoint: profiles, leads and skills, with refusals."""

from sandbox.harness import BotHarness


def test_me_shows_role_skills_and_timezone(bot: BotHarness) -> None:
    bot.fake.add_user("U1", name="ana", tz="Europe/Lisbon", email="ana@example.com")
    reply = bot.command("U1", "/crew", "me")
    assert "contractor" in reply
    assert "Europe/Lisbon" in reply
    assert "ana@example.com" in reply


def test_admin_makes_and_unmakes_a_lead(bot: BotHarness) -> None:
    bot.fake.add_user("U2", name="bo")
    reply = bot.command("UADMIN", "/crew", "lead <@U2|bo>")
    assert "is now a lead" in reply.text
    assert "lead" in bot.command("U2", "/crew", "me")
    bot.wait_dm("U2", "made you a crewcall lead")
    assert "already" in bot.command("UADMIN", "/crew", "lead U2").text
    assert "no longer a lead" in bot.command("UADMIN", "/crew", "unlead <@U2>").text
    assert "contractor" in bot.command("U2", "/crew", "me")


def test_non_admin_cannot_name_leads(bot: BotHarness) -> None:
    bot.fake.add_user("U3")
    bot.fake.add_user("U4")
    reply = bot.command("U3", "/crew", "lead <@U4>")
    assert "Only admins" in reply.text
    assert "contractor" in bot.command("U4", "/crew", "me")


def test_lead_sets_skills_and_contractor_cannot(bot: BotHarness) -> None:
    bot.fake.add_user("ULEAD")
    bot.fake.add_user("U5")
    bot.command("UADMIN", "/crew", "lead <@ULEAD>")
    refused = bot.command("U5", "/crew", "skill <@U5> legal")
    assert "Only leads and admins can set skills" in refused.text
    assert "none yet" in bot.command("U5", "/crew", "me")
    ok = bot.command("ULEAD", "/crew", "skill <@U5|x> Legal, medicine")
    assert "`legal`, `medicine`" in ok.text
    assert "`legal`" in bot.command("U5", "/crew", "me")
    bot.wait_dm("U5", "vetted skills")
