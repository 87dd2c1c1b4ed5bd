"""MiniWoB++ web tasks in a real headless Chromium: the env, the task list, solvers and the ``miniwob`` suite.

Submodules import ``miniwob`` and ``selenium`` (the ``eval`` extra) only when a browser is started.
"""

from ponder.envs.miniwob.actions import INSTRUCTIONS, ParsedAction, parse_action
from ponder.envs.miniwob.browser import BrowserError, BrowserPaths, find_browser, require_browser
from ponder.envs.miniwob.env import MiniWoBEnv
from ponder.envs.miniwob.tasks import MiniWoBTask, load_tasks

__all__ = ["INSTRUCTIONS", "BrowserError", "BrowserPaths", "MiniWoBEnv", "MiniWoBTask", "ParsedAction",
           "find_browser", "load_tasks", "parse_action", "require_browser"]
