"""Every command's help comes from its grammar; the manifest lists exactly the registered commands."""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox.harness import BotHarness

ROOT = Path(__file__).resolve().parents[1]


def test_help_works_for_everyone_on_every_command(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    assert bot.app is not None
    commands = bot.app.commands.commands
    assert commands, "no commands registered"
    for command in commands:
        reply = bot.command("U1", command.name, "help")
        for sub in command.subcommands.values():
            assert sub.usage() in reply.all_text, f"{command.name} help lacks {sub.usage()}"
        named = next((n for n in command.subcommands if n), None)
        if named:
            sub_help = bot.command("U1", command.name, f"{named} help")
            assert command.subcommands[named].usage() in sub_help.all_text


def test_manifest_lists_exactly_the_registered_commands(sqlite_bot: BotHarness) -> None:
    assert sqlite_bot.app is not None
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    listed = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    registered = {c.name for c in sqlite_bot.app.commands.commands}
    assert set(listed) == registered
    assert all(c["should_escape"] is True for c in listed.values())
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_malformed_input_gets_a_specific_error_and_changes_nothing(sqlite_bot: BotHarness) -> None:
    bot = sqlite_bot
    bot.fake.add_user("U1")
    cases = {
        "frobnicate": "`frobnicate` is not a /crew subcommand",
        "lead": "Missing member",
        "lead bob": "`bob` is not a person",
        "lead <@U1> <@U1>": "I didn't understand",
        "skill <@U1> Bad_Skill!": "is not a skill name",
        "skill <@U1>": "Missing skills",
        "skill <@U1> legal level=3": "",
    }
    for text, expected in cases.items():
        reply = bot.command("UADMIN", "/crew", text)
        assert reply.text.startswith(":warning:"), (text, reply.text)
        assert expected in reply.text, (text, reply.text)
        assert "Usage:" in reply.text or "help" in reply.text
    assert "none yet" in bot.command("U1", "/crew", "me")
