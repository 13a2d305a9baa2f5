"""The sandbox workspace in a real browser (headless Chromium through Selenium): the walk-through a
newcomer follows, on the seeded community, with a screenshot of each step in `.artifacts/`.

A lead (desktop window) posts a task through the modal (a bad rate first: the error shows under the
field), a contractor (phone-sized window) claims it, the card updates in the lead's view without a
reload, the contractor's policy question is answered privately and the one the handbook doesn't
know reaches the leads beside the seeded one; the lead replies in a thread; a call Slack would
refuse shows in a banner that can be hidden. A lead schedules an announcement in her own timezone,
not the browser's. `make test` installs Debian's chromium and chromium-driver when missing (`make
browser`) and sets CREWCALL_BROWSER_REQUIRED, so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.run import SEEDED_ESCALATION, TRY_THIS, Sandbox
from views.blocks import local_time

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: The browsers' own timezone, which none of the sandbox's people have: the page shows times in the
#: viewer's timezone, so anything shown in the browser's would be caught.
BROWSER_TZ = "Pacific/Auckland"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _browser(width: int, height: int) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    if width < 600:  # a phone: headless windows are at least 500 px wide, an emulated device isn't
        metrics = {"width": width, "height": height, "pixelRatio": 2, "touch": True}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    else:  # a desktop has a mouse (headless Chromium reports none: hover actions would show always)
        options.add_argument(
            "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4"
        )
    service = Service(CHROMEDRIVER, env={**os.environ, "TZ": BROWSER_TZ})
    return webdriver.Chrome(service=service, options=options)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = "Chromium is not installed: `make browser` installs chromium and chromium-driver"
        if os.environ.get("CREWCALL_BROWSER_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    sandbox = Sandbox(tmp_path_factory.mktemp("sandbox"), port=0).start()
    yield sandbox
    sandbox.stop()


class Page:
    """One person's browser window on the sandbox page."""

    def __init__(self, url: str, width: int, height: int, name: str) -> None:
        self.browser = _browser(width, height)
        self.name = name
        self.browser.get(url)
        self.wait(lambda b: b.find_elements(By.CSS_SELECTOR, "#me option"))

    def wait(self, condition: Callable[[Any], Any], timeout: float = 30) -> Any:
        """Until `condition` holds; the page redraws on every change, so an element found a moment
        ago may be gone (stale): the condition is then tried again."""
        ignored = (StaleElementReferenceException, NoSuchElementException)
        return WebDriverWait(self.browser, timeout, ignored_exceptions=ignored).until(condition)

    def press(self, text: str, button: str) -> None:
        """Press `button` on the message containing `text`."""

        def pressed(b: Any) -> bool:
            message = self.message_with(text)
            b.execute_script("arguments[0].scrollIntoView()", message)
            message.find_element(By.CSS_SELECTOR, f"[data-testid=button-{button}]").click()
            return True

        self.wait(pressed)

    def ephemeral_with(self, text: str) -> str:
        """The text of the newest "Only visible to you" message containing `text`."""

        def found(b: Any) -> Any:
            texts = [e.text for e in b.find_elements(By.CSS_SELECTOR, "#messages .msg.ephemeral")]
            return next((t for t in reversed(texts) if text in t), False)

        return str(self.wait(found))

    def text_of(self, text: str) -> str:
        return str(self.wait(lambda b: self.message_with(text).text))

    def menu(self) -> None:
        """On a phone the channel list is behind the ☰ button."""
        button = self.browser.find_element(By.ID, "menu")
        if button.is_displayed() and "open" not in (
            self.browser.find_element(By.ID, "sidebar").get_attribute("class") or ""
        ):
            button.click()
            self.wait(lambda b: b.find_element(By.ID, "me").is_displayed())

    def be(self, user_id: str) -> None:
        self.menu()
        Select(self.browser.find_element(By.ID, "me")).select_by_value(user_id)
        self.wait(lambda b: b.find_element(By.ID, "me").get_attribute("value") == user_id)

    def open(self, nav: str) -> None:
        self.menu()
        self.browser.find_element(By.CSS_SELECTOR, f'[data-nav="{nav}"]').click()

    def type(self, text: str) -> None:
        box = self.browser.find_element(By.ID, "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)

    def message_with(self, text: str) -> Any:
        def found(b: Any) -> Any:
            for message in b.find_elements(By.CSS_SELECTOR, "#messages [data-testid=message]"):
                if text in message.text:
                    return message
            return False

        return self.wait(found)

    def shot(self, step: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.browser.save_screenshot(str(ARTIFACTS / f"sandbox-{step}-{self.name}.png"))

    def quit(self) -> None:
        self.browser.quit()


def test_walk_through_in_a_real_browser(sandbox: Sandbox) -> None:
    lead = Page(sandbox.url, 1280, 860, "lead")
    contractor = Page(sandbox.url, 390, 844, "contractor-phone")
    try:
        # 1. Lena (lead) opens #tasks and posts a task through the modal.
        lead.be("ULEAD1")
        lead.open("C0TASKS")
        lead.message_with("T-5")
        lead.type("/tasks new")
        modal = lead.wait(lambda b: b.find_element(By.ID, "modal-backdrop").is_displayed())
        assert modal
        form = lead.browser.find_element(By.ID, "modal")
        assert "Post a task" in form.text
        form.find_element(By.ID, "in-title").send_keys("Label contract risk clauses")
        form.find_element(By.ID, "in-skill").send_keys("legal")
        form.find_element(By.ID, "in-rate").send_keys("lots")
        form.find_element(By.ID, "in-hours").send_keys("2")
        form.find_element(By.CSS_SELECTOR, "[data-testid=modal-submit]").click()
        error = lead.wait(lambda b: b.find_element(By.CSS_SELECTOR, "[data-testid=error-rate]"))
        assert error.text  # the bot's message, under the field it is about
        lead.shot("1-modal-field-error")
        rate = lead.browser.find_element(By.ID, "in-rate")
        rate.clear()
        rate.send_keys("130")
        lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=modal-submit]").click()
        lead.wait(lambda b: not b.find_element(By.ID, "modal-backdrop").is_displayed())
        assert "1 of 1 slot left" in lead.text_of("Label contract risk clauses")
        lead.shot("2-task-posted")

        # 2. Ada (contractor, legal, on her phone) claims it.
        contractor.be("UCON1")
        contractor.open("C0TASKS")
        contractor.press("Label contract risk clauses", "Claim")
        assert "Only visible to you" in contractor.ephemeral_with("T-6 · Label contract risk clauses")
        contractor.shot("3-claimed")

        # 3. The card updates in Lena's view, without a reload.
        lead.wait(lambda b: "Full" in lead.message_with("Label contract risk clauses").text)
        assert "Claim" not in lead.text_of("Label contract risk clauses")
        lead.shot("4-card-updated-for-the-lead")

        # 4. Ada asks a policy question and gets a private answer.
        contractor.type("/policy when is payday?")
        answer = contractor.ephemeral_with("Helpful")
        assert "Only visible to you" in answer and "Payday" in answer
        contractor.shot("5-policy-answer")

        # 5. Try this, step 4: a question the handbook doesn't know goes to the leads, apart from
        # the one the seed left there.
        question = re.search(r"`/policy ([^`]+)`", TRY_THIS[3])
        assert question is not None and question.group(1) != SEEDED_ESCALATION
        contractor.type(f"/policy {question.group(1)}")
        contractor.ephemeral_with("asked the leads")
        lead.open("C0LEADS")
        asked = lead.message_with(question.group(1))
        assert SEEDED_ESCALATION not in asked.text
        assert lead.message_with(SEEDED_ESCALATION) != asked

        # 6. Lena replies in a thread on it (the action shows on hover), as in Slack.
        lead.wait(
            lambda b: ActionChains(b).move_to_element(lead.message_with(question.group(1))).perform() or True
        )
        lead.message_with(question.group(1)).find_element(
            By.CSS_SELECTOR, "[data-testid=reply-in-thread]"
        ).click()
        reply = lead.wait(lambda b: b.find_element(By.ID, "thread-text"))
        reply.send_keys("Looking into it with the ops team.")
        reply.send_keys(Keys.ENTER)
        lead.wait(lambda b: "Looking into it" in b.find_element(By.ID, "thread-messages").text)
        assert "1 reply" in lead.text_of(question.group(1))
        parent = next(m for m in sandbox.fake.messages["C0LEADS"] if question.group(1) in str(m))
        assert any(
            m.get("thread_ts") == parent["ts"] and m["user"] == "ULEAD1"
            for m in sandbox.fake.messages["C0LEADS"]
        )
        lead.shot("5-reply-in-thread")
        contractor.open("C0GENERAL")  # on a phone, nothing hovers: the action is there to tap
        tap = contractor.message_with("Legal review desk").find_element(
            By.CSS_SELECTOR, "[data-testid=reply-in-thread]"
        )
        assert tap.is_displayed()

        # 7. A message Slack would refuse shows at the top of the page, naming the block and rule;
        # hidden, the banner keeps its count, and a new violation shows it again.
        client = WebClient(token="xoxb-sandbox-token", base_url=sandbox.fake.api_url)
        bad = [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C0TASKS", text="t", blocks=bad)
        banner = lead.wait(lambda b: b.find_element(By.CSS_SELECTOR, "[data-testid=violations]").text)
        assert "block 0 (header): header text must be a plain_text object" in banner
        lead.shot("6-violation-shown")
        lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=violations-toggle]").click()
        hidden = lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=violations]")
        assert "1 call(s)" in hidden.text and "header text" not in hidden.text and hidden.size["height"] < 40
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C0TASKS", text="t", blocks=bad)
        lead.wait(lambda b: "2 call(s)" in b.find_element(By.CSS_SELECTOR, "[data-testid=violations]").text)
        assert "header text" in lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=violations]").text
        sandbox.fake.violations.clear()

        # 8. While "Start over" re-seeds, the page says so (drawn from the state the server sends).
        lead.browser.execute_script("S.resetting = true; render();")
        assert "Starting over" in lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=resetting]").text
        lead.browser.execute_script("S.resetting = false; render();")
        assert not lead.browser.find_element(By.CSS_SELECTOR, "[data-testid=resetting]").is_displayed()
    finally:
        lead.quit()
        contractor.quit()
    sandbox.fake.assert_no_violations()


def test_a_date_and_time_is_read_and_shown_in_the_viewers_timezone(sandbox: Sandbox) -> None:
    """Lena (America/New_York) schedules an announcement for 09:00 in a browser in another timezone:
    the preview says 09:00 her time."""
    tz = "America/New_York"
    day = datetime.now(ZoneInfo(tz)).date() + timedelta(days=40)
    at = datetime.combine(day, time(9), ZoneInfo(tz))
    lead = Page(sandbox.url, 1280, 860, "lead-tz")
    try:
        lead.be("ULEAD1")
        lead.open("C0RANDOM")
        wall = lead.browser.execute_script("return epochToWall(arguments[0])", int(at.timestamp()))
        assert wall == f"{day.isoformat()}T09:00"  # an initial_date_time is shown her time too
        lead.type("/announce")
        form = lead.wait(lambda b: b.find_element(By.CSS_SELECTOR, "#modal [data-input=send_at]"))
        form = lead.browser.find_element(By.ID, "modal")
        form.find_element(By.ID, "in-text").send_keys("Quarterly all-hands")
        form.find_element(By.CSS_SELECTOR, '[data-input=audience] input[value="0"]').click()
        Select(form.find_element(By.ID, "in-channels")).select_by_value("C0RANDOM")
        lead.browser.execute_script(
            "arguments[0].value = arguments[1]", form.find_element(By.ID, "in-send_at"), wall
        )
        form.find_element(By.CSS_SELECTOR, "[data-testid=modal-submit]").click()
        preview = lead.wait(
            lambda b: "When:" in b.find_element(By.ID, "modal").text and b.find_element(By.ID, "modal").text
        )
        assert f"When: {local_time(at, tz)}." in preview  # e.g. Sat 05 Dec, 09:00 EST
        lead.shot("7-announcement-in-her-timezone")
        lead.browser.find_element(By.CSS_SELECTOR, "#modal [data-close]").click()
        lead.wait(lambda b: not b.find_element(By.ID, "modal-backdrop").is_displayed())
    finally:
        lead.quit()
    sandbox.fake.assert_no_violations()
