"""A tiny Suite for the runner tests (importable by spawned worker processes: tests add this dir to sys.path).

Each episode's metadata says what to do: ``sleep`` seconds (checking the deadline unless ``stubborn``),
``win`` (success), ``raise`` (a bug), ``config`` (a ConfigError), ``exit`` (the worker process dies),
``gate`` (first wait until that file exists, checking the deadline).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ponder.core.errors import ConfigError
from ponder.core.records import Usage
from ponder.envs.base import Episode, EpisodeResult, EvalContext
from ponder.envs.context import EvalOptions, past_deadline


def make_episodes(n: int, suite: str = "fake", **meta: object) -> list[Episode]:
    """``n`` episodes ``e00``, ``e01``, ... with the same metadata (``win`` on even indices by default)."""
    return [Episode(id=f"e{i:02d}", suite=suite, task=f"task {i}", gold=str(i),
                    tier="even" if i % 2 == 0 else "odd", metadata={"win": i % 2 == 0, **meta}) for i in range(n)]


@dataclass
class FakeSuite:
    """Plays episodes by their metadata; ``n`` episodes from :func:`make_episodes` unless given."""

    name: str = "fake"
    policies: tuple[str, ...] = ("walkthrough",)
    needs_process: bool = False
    n: int = 6
    sleep: float = 0.0
    gate: str | None = None  # episodes from index gate_from on wait for this file to exist
    gate_from: int = 10

    def check_options(self, options: EvalOptions) -> None:
        """Nothing to check beyond the run spec: every strategy option applies to this suite."""

    def episodes(self, settings: object, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        eps = make_episodes(self.n, self.name, sleep=self.sleep)
        for ep in eps[self.gate_from:] if self.gate else []:
            ep.metadata["gate"] = self.gate
        return eps[:limit] if limit else eps

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        meta = episode.metadata
        if meta.get("config"):
            raise ConfigError("fake configuration problem")
        if meta.get("raise"):
            raise RuntimeError("fake bug")
        if meta.get("exit"):
            os._exit(3)
        while meta.get("gate") and not Path(meta["gate"]).exists():
            if past_deadline(ctx):
                raise TimeoutError("deadline")
            time.sleep(0.01)
        end = time.monotonic() + float(meta.get("sleep", 0.0))
        while time.monotonic() < end:
            if past_deadline(ctx) and not meta.get("stubborn"):
                raise TimeoutError("deadline")
            time.sleep(0.01)
        win = bool(meta.get("win"))
        return EpisodeResult(episode_id=episode.id, suite=self.name, task=episode.task, tier=episode.tier,
                             policy=ctx.policy, policy_kind="agent" if ctx.policy == "agent" else "harness",
                             success=win, score=float(win), prediction="p", gold=episode.gold,
                             status="solved", failure="" if win else "wrong_answer", env_steps=3,
                             usage=Usage(prompt_tokens=10, completion_tokens=5, tool_calls=1),
                             metadata={"pid": os.getpid()})


def slow_suite() -> FakeSuite:
    """30 episodes of 0.15 s each (the kill-and-resume test); from the 11th on they wait for the file named by
    ``FAKE_SUITE_GATE`` (when set), so a run without that file cannot get past 10 results."""
    return FakeSuite(name="slow", n=30, sleep=0.15, gate=os.environ.get("FAKE_SUITE_GATE"))


def slow_process_suite() -> FakeSuite:
    """The same in worker processes."""
    return FakeSuite(name="slow", n=30, sleep=0.15, needs_process=True, gate=os.environ.get("FAKE_SUITE_GATE"))
