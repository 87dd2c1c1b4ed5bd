"""Scripted worlds for the search tests (``import searchkit``): a tree game, a model that picks by seed, stub verifiers.

``TreeEnv``: ``depth`` moves, ``branching`` admissible actions (``a``, ``b``, ...) at each; the episode ends after
``depth`` moves, won only on ``winning`` (reward 1), lost otherwise. It forks by replay (``ReplayFork``) and counts
the environments made, reset and closed.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from ponder.core.environment import EnvReset, EnvStep, ReplayFork
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.models.base import GenerationParams, Message
from ponder.models.scripted import ScriptedModel


class Counter:
    """Environments made and closed, and steps sent, across the forks of one factory."""

    def __init__(self) -> None:
        self.made = self.closed = self.steps = self.resets = 0


class TreeEnv(ReplayFork):
    """A game whose states are the action prefixes of a ``branching``-ary tree of height ``depth``."""

    name = "tree"
    instructions = "Reply with one action letter."
    examples = ""

    def __init__(self, winning: tuple[str, ...], branching: int = 3, counter: Counter | None = None) -> None:
        self.winning, self.branching = winning, branching
        self.counter = counter or Counter()
        self.counter.made += 1
        self.path: list[str] = []

    def fresh(self) -> TreeEnv:
        return TreeEnv(self.winning, self.branching, self.counter)

    def letters(self) -> list[str]:
        return list(string.ascii_lowercase[: self.branching])

    def reset(self) -> EnvReset:
        self._forget()
        self.path = []
        self.counter.resets += 1
        return EnvReset(observation="You are at the root. Find the treasure.", admissible_actions=self.letters())

    def step(self, action: str) -> EnvStep:
        self._remember(action)
        self.counter.steps += 1
        if len(self.path) >= len(self.winning):
            return EnvStep(observation="The game is over.", done=True, admissible_actions=[])
        if action not in self.letters():
            return EnvStep(observation="Invalid move.", admissible_actions=self.letters())
        self.path.append(action)
        where = "/".join(self.path)
        if len(self.path) < len(self.winning):
            return EnvStep(observation=f"You are at {where}.", admissible_actions=self.letters())
        won = tuple(self.path) == self.winning
        return EnvStep(observation=f"You are at {where}. {'Treasure!' if won else 'Nothing here.'}",
                       reward=1.0 if won else 0.0, done=True, admissible_actions=[], info={"won": won})

    def close(self) -> None:
        self.counter.closed += 1


def admissible(messages: list[Message]) -> list[str]:
    """The admissible actions shown in the last user turn."""
    text = messages[-1]["content"]
    marker = "Admissible actions: "
    return text[text.rindex(marker) + len(marker):].split(", ") if marker in text else []


def seeded_env_model(policy: Callable[[list[str], int], str] | None = None) -> ScriptedModel:
    """A continuous-batching scripted env player: the action ``policy(admissible, seed)`` (default: by seed)."""
    pick = policy or (lambda actions, seed: actions[seed % len(actions)])

    def reply(messages: list[Message], params: GenerationParams) -> str:
        if "Reply with the lesson only" in messages[-1]["content"]:
            return "Lesson: try another first move."
        return pick(admissible(messages), params.seed or 0)

    return ScriptedModel(reply, continuous=True)


def random_policy(actions: list[str], seed: int) -> str:
    """A seeded uniform choice (samples of one node may repeat each other)."""
    return random.Random(seed).choice(actions)


class EnvOutcomeVerifier:
    """``env`` as the stub: 1 for a won episode, else the normalized reward (0 here until the win)."""

    name = "env"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        if trace.won:
            return Score(value=1.0)
        return Score(value=min(1.0, trace.reward / (trace.max_reward or 1.0)))


class PricedVerifier(EnvOutcomeVerifier):
    """The stub ``env`` verifier that also charges tokens, as an LLM verifier would."""

    name = "priced"

    def __init__(self, tokens: int = 100) -> None:
        self.tokens, self.calls = tokens, 0

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        self.calls += 1
        return super().score(trace, ctx).model_copy(update={"prompt_tokens": self.tokens, "model_calls": 1})
