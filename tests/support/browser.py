"""A real browser for the dashboard tests: Debian's chromium, headless, driven by Selenium
through Debian's chromium-driver (both installed by scripts/bootstrap.sh).

Selenium's calls block, so each goes through a thread: the test's event loop (and the Kafka
producer on it) keeps running while the browser works. Waiting is polling the page with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

# Between two looks at the page while waiting: short, so a change is seen within ~50 ms.
_POLL_S = 0.05


class BrowserMissing(RuntimeError):
    """chromium or chromedriver is not installed."""


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[webdriver.Chrome]:
    """A headless chromium, quit after the block."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise BrowserMissing(
            "the browser tests need Debian's chromium and chromium-driver: "
            "scripts/bootstrap.sh installs them (apt-get, as root)"
        )
    options = Options()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        # Root (as CI runs) has no sandbox; /dev/shm is small in containers.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    # Both paths given: Selenium looks nothing up and downloads nothing.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Page:
    """The dashboard in the browser, with async waits."""

    driver: webdriver.Chrome
    base_url: str

    async def open(self, path: str) -> None:
        await asyncio.to_thread(self.driver.get, f"{self.base_url}{path}")

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def use_token(self, token: str) -> None:
        """Types the token into the page's form, as a person would."""

        def type_it() -> None:
            field = self.driver.find_element(By.ID, "token")
            field.clear()
            field.send_keys(token)
            self.driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

        await asyncio.to_thread(type_it)

    async def show(self, view: str, entity_id: str) -> None:
        """Picks a learner or a course in the page's form."""
        field_id = "course-id" if view == "course" else "user-id"

        def pick() -> None:
            field = self.driver.find_element(By.ID, field_id)
            field.clear()
            field.send_keys(entity_id)
            self.driver.find_element(By.CSS_SELECTOR, f"#pick-form button[value={view}]").click()

        await asyncio.to_thread(pick)

    async def wait_for(self, script: str, *args: Any, within: float, what: str) -> Any:
        """The first truthy value of ``script`` (a JavaScript function body that returns),
        polled until ``within`` seconds have passed; ``TimeoutError`` naming ``what`` and the
        last value otherwise."""
        deadline = time.monotonic() + within
        value: Any = None
        while True:
            value = await self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {within}s (last seen: {value!r})")
            await asyncio.sleep(_POLL_S)

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.driver.save_screenshot, str(path))
