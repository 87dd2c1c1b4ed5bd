"""MiniWoB++'s Selenium instance and gymnasium environment, started our way (imported only when MiniWoB runs).

:class:`PonderSeleniumInstance` starts Debian's Chromium with ponder's flags and an explicit chromedriver path
(so Selenium Manager never runs and nothing is downloaded); :class:`PonderMiniWoBEnvironment` uses it, switches
tasks without restarting the browser and makes sure every browser process is gone after ``close()``. The
``eval`` extra (``miniwob``, ``selenium``) provides the bases: :func:`ponder.envs.miniwob.browser.open_environment`
imports this module lazily.
"""

from __future__ import annotations

import os
import time
import urllib.parse

from miniwob.environment import MiniWoBEnvironment
from miniwob.fields import get_field_extractor
from miniwob.selenium_instance import DEFAULT_BASE_URL, SeleniumInstance
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from ponder.envs.miniwob.browser import CHROME_FLAGS, BrowserError, BrowserPaths, shutdown_instance


class PonderSeleniumInstance(SeleniumInstance):
    """MiniWoB's instance, started with our Chromium, flags and chromedriver path."""

    paths: BrowserPaths

    def create_driver(self) -> None:
        """Start Chromium headless and open the task page."""
        options = webdriver.ChromeOptions()
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={self.window_width},{self.window_height}")
        options.binary_location = self.paths.chrome
        service = Service(executable_path=self.paths.chromedriver, log_output=os.devnull)
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as exc:
            raise BrowserError(f"Chromium did not start ({self.paths.chrome}): {exc.msg or exc}") from None
        self.driver_pid = service.process.pid
        self.driver.implicitly_wait(0)
        try:
            self.open_page()
        except BaseException:
            shutdown_instance(self)
            raise

    def open_page(self) -> None:
        """Load ``self.url`` and wait for MiniWoB's start screen."""
        self.driver.get(self.url)
        for _ in range(100):
            if self.driver.execute_script("return typeof core !== 'undefined' && !!core.cover_div;"):
                break
            time.sleep(0.05)
        else:
            raise BrowserError(f"the MiniWoB page did not load: {self.url}")
        self.task_time_limit_ms = float(self.driver.execute_script("return core.EPISODE_MAX_TIME;"))
        self.inner_width, self.inner_height = self.driver.execute_script(
            "return [window.innerWidth, window.innerHeight];")


class PonderMiniWoBEnvironment(MiniWoBEnvironment):
    """MiniWoB's gymnasium environment on :class:`PonderSeleniumInstance`, able to switch tasks."""

    def __init__(self, subdomain: str, paths: BrowserPaths) -> None:
        self._paths = paths
        super().__init__(subdomain=subdomain)

    def _hard_reset_instance(self) -> None:
        if getattr(self, "instance", None):
            shutdown_instance(self.instance)
        instance = PonderSeleniumInstance(index=0, **self.instance_kwargs)
        instance.paths = self._paths
        self.instance = instance
        instance.start()

    def switch_task(self, subdomain: str) -> None:
        """Load another task's page in the same browser."""
        instance = self.instance
        self.subdomain = self.instance_kwargs["subdomain"] = subdomain
        instance.url = urllib.parse.urljoin(DEFAULT_BASE_URL, f"{subdomain}.html")
        instance.field_extractor = get_field_extractor(subdomain)
        instance.num_episodes = 0
        instance.open_page()
