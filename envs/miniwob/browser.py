"""The headless Chromium that runs MiniWoB++ tasks: finding it, starting it offline, and stopping it cleanly.

MiniWoB++ (``miniwob==1.1``) drives Chrome through Selenium from its ``SeleniumInstance``; its own driver
start-up only knows ``MINIWOB_CHROME_BINARY`` / ``MINIWOB_CHROMEDRIVER`` and a fixed set of flags. We subclass
the instance to start Debian's ``chromium`` with our flags and an explicit chromedriver path (so Selenium
Manager never runs and nothing is downloaded), and the gymnasium environment to use that instance, to switch
tasks without restarting the browser, and to make sure every browser process is gone after ``close()``
(:mod:`ponder.envs.miniwob.selenium_env`, imported only when a browser starts).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, MissingExtraError, ToolError

log = logging.getLogger(__name__)

#: Debian packages that provide the browser and its driver.
APT_PACKAGES = "chromium chromium-driver"

#: Flags for a headless Chromium in a container, with no background network traffic.
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


class BrowserError(ToolError):
    """The browser could not be started or stopped working."""


@dataclass(frozen=True)
class BrowserPaths:
    """Where the browser and its driver live."""

    chrome: str
    chromedriver: str


def find_browser() -> BrowserPaths | None:
    """The Chromium binary and chromedriver: ``MINIWOB_CHROME_BINARY`` / ``MINIWOB_CHROMEDRIVER``, else the PATH.

    Returns ``None`` when either is missing.
    """
    chrome = os.environ.get("MINIWOB_CHROME_BINARY") or next(
        (p for p in (shutil.which(n) for n in _BROWSER_NAMES) if p), None)
    driver = os.environ.get("MINIWOB_CHROMEDRIVER") or shutil.which("chromedriver") or next(
        (p for p in _DRIVER_PATHS if os.access(p, os.X_OK)), None)
    if not chrome or not driver or not os.access(chrome, os.X_OK) or not os.access(driver, os.X_OK):
        return None
    return BrowserPaths(chrome=chrome, chromedriver=driver)


def require_browser() -> BrowserPaths:
    """Like :func:`find_browser`, but a missing browser or Python package is a :class:`ConfigError`.

    Raises:
        ConfigError: naming the apt packages (``chromium chromium-driver``) or the pip extra to install.
    """
    for package in ("miniwob", "selenium"):
        try:
            __import__(package)
        except ImportError:
            raise MissingExtraError(package, "eval", "MiniWoB++ web tasks") from None
    paths = find_browser()
    if paths is None:
        raise ConfigError(
            "MiniWoB++ needs Chromium and chromedriver, which were not found. Install them with: "
            f"apt-get install -y {APT_PACKAGES} (or `make system-deps-browser`), or point "
            "MINIWOB_CHROME_BINARY and MINIWOB_CHROMEDRIVER at them."
        )
    return paths


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from ``/proc``; empty where ``/proc`` is unavailable)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def open_environment(task: str, paths: BrowserPaths) -> Any:
    """Start a browser on ``task`` and return MiniWoB's gymnasium environment for it.

    Raises:
        BrowserError: when Chromium does not start or the task page does not load.
    """
    from ponder.envs.miniwob.selenium_env import PonderMiniWoBEnvironment  # miniwob and selenium are optional

    return PonderMiniWoBEnvironment(task, paths)


def shutdown(gym_env: Any) -> None:
    """Quit the browser of MiniWoB's gymnasium environment ``gym_env`` (see :func:`shutdown_instance`)."""
    instance = getattr(gym_env, "instance", None)
    if instance is not None:
        shutdown_instance(instance)


def shutdown_instance(instance: Any) -> None:
    """Quit the browser of a Selenium instance and kill (by pid) any of its processes still alive after that."""
    driver_pid = getattr(instance, "driver_pid", None)
    tree = [driver_pid, *descendants(driver_pid)] if driver_pid else []
    driver = getattr(instance, "driver", None)
    if driver is not None:
        try:
            driver.quit()
        except Exception as exc:  # noqa: BLE001 - a dead browser: fall through to the kill below
            log.debug("driver.quit failed: %s", exc)
    deadline = time.monotonic() + 3
    while any(alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in tree:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    instance.died = True
    instance.driver_pid = None
