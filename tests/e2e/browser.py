"""A real headless Chromium (Debian's ``chromium`` + ``chromedriver``) driven by selenium, for the browser tests.

The driver path is given explicitly, so selenium-manager never runs (it would try to download a
browser). The flags and a new empty profile keep Chromium from opening background connections of its
own (update checks, sync, QUIC probes), which this machine's closed network refuses. Every network
request the page makes is read back from Chromium's performance log (DevTools ``Network`` events).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,900",
)
INSTALL_HINT = "apt-get install -y chromium chromium-driver (.ci/run does this)"

T = TypeVar("T")


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """Start headless Chromium with a fresh profile; quit it and delete the profile afterwards."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: {INSTALL_HINT}")
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: selenium-manager, if ever called, stays offline
    profile = tempfile.mkdtemp(prefix="streamserve-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested_urls(driver: WebDriver) -> list[str]:
    """The URLs of the requests the page sent since the last call (DevTools ``Network.requestWillBeSent``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], timeout: float, what: str,
             poll: float = 0.05) -> T:
    """Poll ``condition`` until it is truthy, or fail after ``timeout`` seconds saying ``what`` never happened."""
    result: T = WebDriverWait(driver, timeout, poll_frequency=poll).until(condition, message=what)
    return result
