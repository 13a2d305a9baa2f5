"""A fan-out interrupted by SIGKILL of the real bot process, then restarted, delivers to every
recipient exactly once: nobody who got the DM gets it again, nobody is skipped."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from db.engine import Database
from db.models import AnnouncementDelivery
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack
from tests.announce_helpers import deliveries, wait_status, wait_until

RECIPIENTS = 300


def _states(database_url: str) -> dict[str, int]:
    db = Database(database_url)
    try:
        with db.write() as session:
            return dict(
                session.exec(
                    select(AnnouncementDelivery.state, func.count()).group_by(col(AnnouncementDelivery.state))
                ).all()
            )
    finally:
        db.dispose()


def test_a_fanout_killed_halfway_and_restarted_delivers_to_everyone_exactly_once(
    database_url: str, fake: FakeSlack
) -> None:
    people = [u["id"] for u in fake.add_users(RECIPIENTS)]
    fake.add_user("UBOT9", is_bot=True)
    fake.add_user("UGONE9", deleted=True)
    # Each request spends a moment in "Slack" before it is stored: when the bot is killed, the
    # messages it had under way still land, unrecorded, which is the in-doubt case.
    fake.latency = 0.01
    bot = BotProcess(fake, database_url, env={"ANNOUNCE_RATE_PER_MIN": "12000", "ANNOUNCE_INDOUBT_WAIT": "1"})
    bot.start()
    try:
        assert bot.driver.command("UADMIN", "/announce", "everyone Exactly once, please").status == 200
        wait_until(lambda: sum(deliveries(fake, 1).values()) >= RECIPIENTS // 3, timeout=30)
        bot.kill()
        at_kill = _states(database_url)
        delivered_at_kill = sum(deliveries(fake, 1).values())
        assert at_kill.get("pending", 0) > 0, "the fan-out finished before the kill: nothing was tested"
        assert delivered_at_kill < RECIPIENTS

        bot.start()
        wait_status(fake, 1, "done", timeout=60)
    finally:
        bot.stop()
    assert deliveries(fake, 1) == {u: 1 for u in [*people, "UADMIN"]}, bot.output()[-3000:]
    assert _states(database_url) == {"sent": RECIPIENTS + 1}
