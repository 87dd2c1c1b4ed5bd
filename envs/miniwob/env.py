"""One MiniWoB++ task in a real headless Chromium, as a text :class:`~ponder.envs.base.Env`.

``reset(seed)`` starts an episode (the browser is started once, on the first reset, and reused), and shows
the task's instruction (MiniWoB's *utterance*) and the page as text (see :mod:`.render`). ``step(action)``
parses ``click [ref]`` / ``type [ref] text`` / ``select [ref] option`` / ``press key`` (see :mod:`.actions`):
a malformed action, an unknown ref or an unknown option is answered with an observation and does not touch
the browser; a valid one runs through MiniWoB's gymnasium environment (``CLICK_ELEMENT``,
``FOCUS_ELEMENT_AND_TYPE_TEXT``, ``PRESS_KEY``) or, for ``select``, Selenium's ``Select`` on the element.
The episode ends when MiniWoB says so; the step's reward is MiniWoB's raw reward (without the time
penalty), and a raw reward above 0 is a win (``info["won"]``).

MiniWoB gives each episode a wall-clock limit (10 s for most tasks), which a language model thinking between
steps cannot meet; ``time_limit`` replaces it (seconds; ``None`` keeps the task's own limit).
"""

from __future__ import annotations

import time
from typing import Any

from ponder.core.environment import Env, EnvReset, EnvStep, ReplayFork
from ponder.envs.miniwob.actions import INSTRUCTIONS, ParsedAction, normalize_key, parse_action
from ponder.envs.miniwob.browser import BrowserError, BrowserPaths, open_environment, require_browser, shutdown
from ponder.envs.miniwob.render import SELECT_INFO_JS, clickable_refs, render_elements

#: JavaScript: empty a text field before ``type`` (so ``type`` replaces, as the instructions say).
_CLEAR_JS = """
var el = core.previousDOMInfo[arguments[0]];
var keep = ['checkbox', 'radio', 'button', 'submit', 'reset', 'file', 'image', 'range', 'color'];
if ((el instanceof HTMLInputElement && keep.indexOf(el.type) < 0) || el instanceof HTMLTextAreaElement) {
  el.value = '';
}
"""
_ELEMENT_JS = "return core.previousDOMInfo[arguments[0]];"


class MiniWoBEnv(ReplayFork):
    """One MiniWoB++ task in a headless Chromium (one browser per instance, reused across resets).

    Args:
        task: The MiniWoB task name, e.g. ``click-button`` (its page ``miniwob/html/miniwob/<task>.html``).
        seed: The seed of the next :meth:`reset` when it is called without one.
        time_limit: Seconds an episode may take in the browser; ``None`` keeps MiniWoB's own limit.
        paths: Chromium and chromedriver (default: :func:`~ponder.envs.miniwob.browser.require_browser`).

    ``fork()`` (:class:`~ponder.core.environment.ReplayFork`) starts a second browser on the same task, resets
    it with the seed of this episode and replays the actions sent since (a seeded MiniWoB page is deterministic).

    Raises:
        ConfigError: when Chromium, chromedriver or the ``miniwob`` / ``selenium`` packages are missing.
    """

    instructions = INSTRUCTIONS
    #: No few-shot set: the action format in the instructions is enough.
    examples = ""

    def __init__(self, task: str, *, seed: int | None = None, time_limit: float | None = 600.0,
                 paths: BrowserPaths | None = None) -> None:
        self.task = task
        self.seed = seed
        self.time_limit = time_limit
        self.paths = paths or require_browser()
        self.name = f"miniwob/{task}"
        self.browser_starts = 0
        self.browser_seconds = 0.0
        self._gym: Any = None
        self._refs: set[int] = set()
        self._selects: dict[int, dict[str, Any]] = {}
        self._done = True
        self._utterance = ""
        self._loaded_task = ""
        self._episode_seed: int | None = seed

    # -- browser ----------------------------------------------------------------------------------

    @property
    def browser_pid(self) -> int | None:
        """The chromedriver process id (Chromium runs under it), or ``None`` before the first reset."""
        return getattr(getattr(self._gym, "instance", None), "driver_pid", None)

    @property
    def driver(self) -> Any:
        """The Selenium driver (started on first use)."""
        return self._ensure_browser().instance.driver

    def _ensure_browser(self) -> Any:
        if self._gym is not None and getattr(self._gym.instance, "died", False):
            shutdown(self._gym)
            self._gym = None
        if self._gym is None:
            start = time.perf_counter()
            self._gym = open_environment(self.task, self.paths)
            self.browser_seconds = time.perf_counter() - start
            self.browser_starts += 1
            self._loaded_task = self.task
        elif self._loaded_task != self.task:
            self._gym.switch_task(self.task)
            self._loaded_task = self.task
        return self._gym

    def fresh(self) -> Env:
        """A new environment (its own browser, started on its first reset) on this episode's task and seed."""
        return MiniWoBEnv(self.task, seed=self._episode_seed, time_limit=self.time_limit, paths=self.paths)

    def set_task(self, task: str) -> None:
        """Play ``task`` from the next :meth:`reset` on, in the same browser."""
        self.task, self.name = task, f"miniwob/{task}"
        self._done = True

    def close(self) -> None:
        """Quit the browser; no Chromium or chromedriver process of this env survives."""
        if self._gym is not None:
            shutdown(self._gym)
            self._gym = None
        self._done = True

    def __enter__(self) -> MiniWoBEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- episode ----------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> EnvReset:
        """Start a new episode of the task (``seed``, else ``self.seed``) and show the page.

        Raises:
            BrowserError: when the browser cannot be started or driven.
        """
        seed = self.seed if seed is None else seed
        gym = self._ensure_browser()
        try:
            limit_ms = gym.instance.task_time_limit_ms if self.time_limit is None else self.time_limit * 1000
            gym.instance.driver.execute_script(f"core.EPISODE_MAX_TIME = {int(limit_ms)};")
            obs, info = gym.reset(seed=seed, options={"record_screenshots": False})
        except BrowserError:
            raise
        except Exception as exc:
            raise BrowserError(f"MiniWoB reset failed on {self.task}: {type(exc).__name__}: {exc}") from exc
        self._done = False
        self._episode_seed = seed
        self._forget()
        self._utterance = str(obs["utterance"])
        page = self._observe(obs)
        observation = f"Task: {self._utterance}\nPage:\n{page}"
        return EnvReset(observation=observation, info={
            "instructions": INSTRUCTIONS, "task": self.task, "seed": seed, "utterance": self._utterance,
            "fields": [list(f) for f in obs.get("fields", ())], "time_limit_s": limit_ms / 1000})

    def step(self, action: str) -> EnvStep:
        """Run one action; bad actions are answered with an observation (no browser step)."""
        self._remember(action)
        if self._done:
            return EnvStep(observation="The episode is over.", done=True, info={"invalid": True})
        parsed = parse_action(action)
        problem = parsed.problem or self._check(parsed)
        if problem:
            return EnvStep(observation=f"Invalid action: {problem}", info={"invalid": True})
        gym = self._gym
        try:
            if parsed.verb == "select":
                problem = self._select(parsed)
                if problem:
                    return EnvStep(observation=f"Invalid action: {problem}", info={"invalid": True})
                gym_action = gym.create_action("NONE")
            elif parsed.verb == "click":
                gym_action = gym.create_action("CLICK_ELEMENT", ref=parsed.ref)
            elif parsed.verb == "type":
                gym.instance.driver.execute_script(_CLEAR_JS, parsed.ref)
                gym_action = gym.create_action("FOCUS_ELEMENT_AND_TYPE_TEXT", ref=parsed.ref, text=parsed.argument)
            else:
                key = normalize_key(parsed.argument, gym.action_space_config.allowed_keys)
                gym_action = gym.create_action("PRESS_KEY", key=gym.action_space_config.allowed_keys.index(key))
            obs, _, terminated, _, info = gym.step(gym_action)
        except Exception as exc:
            raise BrowserError(f"MiniWoB step failed on {self.task}: {type(exc).__name__}: {exc}") from exc
        if terminated:
            self._done = True
            raw = float(info.get("raw_reward", 0.0))
            won = raw > 0
            reason = info.get("reason")
            verdict = "success" if won else "failure"
            text = f"The episode is over: {verdict} (reward {raw:g}{f', {reason}' if reason else ''})."
            return EnvStep(observation=text, reward=raw, done=True, info={
                "won": won, "lost": not won, "raw_reward": raw, "env_reward": float(info.get("env_reward", 0.0)),
                "reason": None if reason is None else str(reason)})
        return EnvStep(observation=f"Page:\n{self._observe(obs)}", info={"won": False})

    # -- helpers ----------------------------------------------------------------------------------

    def _observe(self, obs: dict[str, Any]) -> str:
        elements = obs.get("dom_elements", ())
        self._refs = clickable_refs(elements)
        raw = self._gym.instance.driver.execute_script(SELECT_INFO_JS) or {}
        self._selects = {int(k): v for k, v in raw.items()}
        return render_elements(elements, self._selects)

    def _check(self, parsed: ParsedAction) -> str:
        if parsed.verb == "press":
            if normalize_key(parsed.argument, self._gym.action_space_config.allowed_keys) is None:
                return (f"unknown key {parsed.argument!r}. Keys: Enter, Tab, Backspace, Delete, Space, arrows "
                        "(ArrowUp ...), PageUp, PageDown, a letter or digit, ctrl+a / ctrl+c / ctrl+x / ctrl+v.")
            return ""
        assert parsed.ref is not None
        if parsed.ref not in self._refs:
            if parsed.ref <= 0:
                return "refs are the positive numbers in brackets; quoted text lines have none: use the element " \
                       "that contains the text."
            return f"there is no element [{parsed.ref}] on the page now; use a ref from the latest page."
        if parsed.verb == "select" and parsed.ref not in self._selects:
            return f"[{parsed.ref}] is not a <select> list; select works on elements that show options."
        return ""

    def _select(self, parsed: ParsedAction) -> str:
        from selenium.webdriver.support.ui import Select

        options = [str(o) for o in self._selects[parsed.ref]["options"]]  # type: ignore[index]
        wanted = " ".join(parsed.argument.split())
        index = next((i for i, o in enumerate(options) if o == wanted), None)
        if index is None:
            index = next((i for i, o in enumerate(options) if " ".join(o.split()).lower() == wanted.lower()), None)
        if index is None:
            return f"[{parsed.ref}] has no option {wanted!r}; its options are: " + " | ".join(options)
        element = self._gym.instance.driver.execute_script(_ELEMENT_JS, parsed.ref)
        Select(element).select_by_index(index)
        return ""
