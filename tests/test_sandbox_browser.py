"""The sandbox workspace in a real browser (headless Chromium through Selenium): the walk-through a
newcomer follows, on the seeded community, with a screenshot of each step in `.artifacts/`.

A lead (desktop window) posts a task through the modal (a bad rate first: the error shows under the
field), a contractor (phone-sized window) claims it, the card updates in the lead's view without a
reload, and the contractor's policy question is answered privately. `make test` installs Debian's
chromium and chromium-driver when missing (`make browser`) and sets CREWCALL_BROWSER_REQUIRED, so
there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.run import Sandbox

ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
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
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


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

        # 5. A message Slack would refuse shows at the top of the page, naming the block and rule.
        client = WebClient(token="xoxb-sandbox-token", base_url=sandbox.fake.api_url)
        with pytest.raises(SlackApiError):
            client.chat_postMessage(
                channel="C0TASKS",
                text="t",
                blocks=[{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}],
            )
        banner = lead.wait(lambda b: b.find_element(By.CSS_SELECTOR, "[data-testid=violations]").text)
        assert "block 0 (header): header text must be a plain_text object" in banner
        lead.shot("6-violation-shown")
        sandbox.fake.violations.clear()
    finally:
        lead.quit()
        contractor.quit()
    sandbox.fake.assert_no_violations()
