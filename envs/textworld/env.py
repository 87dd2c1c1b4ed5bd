"""The :class:`~ponder.envs.base.Env` over one compiled TextWorld game (``textworld.start``).

Observations are the game's text without the start banner, the ``>`` prompt and status line, and the
end-of-game "RESTART, RESTORE..." question. Rewards are score increments (TextWorld reports the running
score); ``info`` carries ``won``, ``lost``, ``score``, ``max_score``, ``moves`` and ``intermediate_reward``
(TextWorld's own shaping signal for the last action: +1 when it brought the quest closer, -1 when it moved
away, else 0; the agent never sees it, the ``env`` verifier of a search reads it as progress). Invalid commands get the
game's own answer ("That's not a verb I recognise."). Once the game is over, further actions are answered
with :data:`GAME_OVER` and ``done=True`` (the interpreter itself would reset ``done``).
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import Any

from ponder.core.environment import Env, EnvReset, EnvStep, ReplayFork
from ponder.core.errors import DataError
from ponder.core.prompts import load_prompt

GAME_OVER = "The game is over."
_BANNER = re.compile(r"^[\s$_|\\/<>]*$")
_PROMPT = re.compile(r"^\s*>.*$")
#: TextWorld loads a game with one module-level grammar parser (tatsu), which is not thread-safe: games start
#: and reset under this lock (self-consistency samples play copies of a game in parallel threads).
LOAD_LOCK = threading.Lock()
_END_QUESTION = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"


def clean_feedback(text: str) -> str:
    """The game's text without banner art, prompt / status lines, the end question and extra blank lines."""
    lines = []
    for line in text.replace(_END_QUESTION, "").splitlines():
        if _PROMPT.match(line) or (_BANNER.match(line) and any(c in line for c in "$_|")):
            continue
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class TextWorldEnv(ReplayFork):
    """One TextWorld game (``.z8``) as an :class:`Env`.

    Args:
        game_file: The compiled game.
        name: The env name recorded in trajectories.
        objective: The task, appended to the first observation when the game's intro does not show it.

    Attributes:
        instructions: The action format for the agent's system prompt.
        examples: The few-shot set (``prompts/env_examples.json``) for the agent.

    ``fork()`` (:class:`~ponder.core.environment.ReplayFork`) starts the same game in a new interpreter and
    replays the actions sent since the last ``reset`` (the games are deterministic).
    """

    examples = "textworld"

    def __init__(self, game_file: str | Path, name: str = "textworld", objective: str = "") -> None:
        self.game_file = Path(game_file)
        if not self.game_file.is_file():
            raise DataError(f"no TextWorld game at {self.game_file}")
        self.name = name
        self.objective = objective
        self.instructions = load_prompt("env_instructions_textworld").strip()
        self._env: Any = None
        self._score = 0.0
        self._done = False

    def _start(self) -> Any:
        if self._env is None:
            import textworld

            infos = textworld.EnvInfos(admissible_commands=True, won=True, lost=True, score=True, max_score=True,
                                       moves=True, intermediate_reward=True)
            with warnings.catch_warnings():  # jericho: "not fully supported" (TextWorld tracks the score itself)
                warnings.simplefilter("ignore")
                self._env = textworld.start(str(self.game_file), request_infos=infos)
        return self._env

    def fresh(self) -> Env:
        """The same game in a new, unstarted environment."""
        return TextWorldEnv(self.game_file, name=self.name, objective=self.objective)

    def reset(self) -> EnvReset:
        """Start the game from the beginning."""
        with LOAD_LOCK:
            state = self._start().reset()
        self._forget()
        self._score, self._done = float(state["score"] or 0), False
        text = clean_feedback(state.feedback)
        if self.objective and self.objective not in text:
            text = f"{text}\n\n{self.objective}".strip()
        return EnvReset(observation=text, admissible_actions=self._admissible(state), info=self._info(state))

    def step(self, action: str) -> EnvStep:
        """Send one command; the game answers invalid ones itself."""
        if self._env is None:
            raise RuntimeError("step() before reset()")
        self._remember(action)
        if self._done:
            return EnvStep(observation=GAME_OVER, done=True, admissible_actions=[])
        command = " ".join(action.split())  # one command: a newline would send several
        state, score, done = self._env.step(command)
        reward, self._score = float(score or 0) - self._score, float(score or 0)
        self._done = bool(done)
        return EnvStep(observation=clean_feedback(state.feedback) or "Nothing happens.", reward=reward,
                       done=self._done, admissible_actions=[] if self._done else self._admissible(state),
                       info=self._info(state))

    def close(self) -> None:
        """Stop the game interpreter."""
        if self._env is not None:
            self._env.close()
            self._env = None

    @staticmethod
    def _admissible(state: Any) -> list[str] | None:
        commands = state.get("admissible_commands")
        return sorted(commands) if commands is not None else None

    @staticmethod
    def _info(state: Any) -> dict[str, Any]:
        return {"won": bool(state.get("won")), "lost": bool(state.get("lost")), "score": float(state["score"] or 0),
                "max_score": float(state.get("max_score") or 0), "moves": int(state.get("moves") or 0),
                "intermediate_reward": int(state.get("intermediate_reward") or 0)}

    def __enter__(self) -> TextWorldEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
