"""The agent kernel one step at a time: the partial runs a tree search expands, scores and rolls out.

A search needs what the compiled agent graph hides: the state after each step, and several different next
steps from one state. :class:`Stepper` calls an agent's kernel parts (``REACT_PARTS``, ``PAL_PARTS``,
``ENV_PARTS``: the same ``prefix``, ``step`` and ``route`` the graphs compile) directly:
``parts.step(state, Runtime(context=...))``, applies the update as the graph's reducers would (steps and
messages appended) and asks ``parts.route`` where the run would go (a terminal route sets the status the
kernel's ``max_steps`` / ``give_up`` nodes would).

Every step runs in a session of its own, so children of one node never share mutable state:

- env agent: a fresh environment from the context's factory, replayed to the node's action prefix
  (:func:`~ponder.core.environment.replay`), closed after the step (a rollout keeps one to its end);
- ReAct: fresh tools (the context's factory, else ``settings.tools``) with the stateful tools' earlier calls
  replayed (:func:`ponder.tools.replay.replay_tool_calls`);
- PAL: a fresh executor (the context's factory, else a sandbox session), closed after.

Each call gets its own seed and a sampling temperature (samples of one node must differ). The stepper counts
the environment steps it sent (replays included) and resets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext
from ponder.agents.driver import describe_error
from ponder.agents.kernel import GIVE_UP, MAX_STEPS, AgentParts, recalled_memory
from ponder.core.environment import EnvReset, replay
from ponder.core.records import Step, Trajectory, Usage
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.verifiers.base import Trace

#: Env agent: thoughts folded into one move before its action (a tree edge is an env action, not a thought).
THINK_STEPS = 2
#: The seeds of a move's further thoughts: ``seed + THINK_SEED_STRIDE * i`` (far from the search's own seeds).
THINK_SEED_STRIDE = 1_000_003
#: A model is stuck in a loop when its last ``LOOP_WINDOW`` replies hold at most ``LOOP_DISTINCT`` texts (one
#: reply repeated, or two alternating: "take egg", "drop egg", ...); a rollout stops there.
LOOP_WINDOW, LOOP_DISTINCT = 4, 2


def agent_parts(agent: str) -> AgentParts:
    """The kernel parts of ``agent`` (``react``, ``pal`` or ``env``)."""
    if agent == "env":
        from ponder.agents.env import ENV_PARTS

        return ENV_PARTS
    if agent == "pal":
        from ponder.agents.pal import PAL_PARTS

        return PAL_PARTS
    from ponder.agents.react import REACT_PARTS

    return REACT_PARTS


def apply_update(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``state`` with a node's ``update`` applied like the agent state's reducers (steps, messages appended)."""
    new = {**state, **update}
    for key in ("steps", "messages"):
        if key in update:
            new[key] = [*state.get(key, []), *update[key]]
    return new


@dataclass(frozen=True)
class Partial:
    """A partial (or finished) run: the agent state and the environment actions that reach it from a reset.

    Attributes:
        state: The agent state (task, messages, steps, status, ...; env runs: reward, done, won, env_steps).
        actions: The actions sent to the environment since its reset (env agent only).
    """

    state: dict[str, Any]
    actions: tuple[str, ...] = ()

    @property
    def status(self) -> str | None:
        """How the run ended (``None``: it goes on)."""
        return self.state.get("status")

    @property
    def terminal(self) -> bool:
        """Whether the run is over."""
        return bool(self.state.get("status"))

    @property
    def steps(self) -> list[Step]:
        """The steps so far."""
        return list(self.state.get("steps") or [])

    @property
    def won(self) -> bool:
        """The environment said the episode was won."""
        return bool(self.state.get("won"))

    def key(self) -> str:
        """What makes two children of one node the same: the last step's action (or answer, or reply)."""
        step = self.state["steps"][-1] if self.state.get("steps") else None
        if step is None:
            return f"error:{self.status}"
        if step.kind == "final" or (self.terminal and step.kind == "program"):
            return f"answer:{' '.join(str(self.state.get('final_answer')).lower().split())}"
        if step.kind == "action":
            action = " ".join((step.action or "").lower().split()).rstrip(".!")
            thought = f":{step.thought.strip().lower()}" if step.action == "think" else ""
            return f"action:{action}:{' '.join((step.action_input or '').split())}{thought}"
        return f"{step.kind}:{' '.join((step.action_input or step.raw).split())}"


@dataclass
class Moved:
    """One move from a partial: one agent step (env agent: up to ``think_steps`` thoughts and then the action).

    Attributes:
        partial: The new partial run.
        steps: The steps taken (empty when the step failed before it finished: ``error`` says why).
        seconds: Wall time of the move (session setup and replay included).
        seed: The sampling seed of its (first) model call.
        error: The exception that ended the run (the environment or a tool failed).
    """

    partial: Partial
    steps: list[Step]
    seconds: float
    seed: int
    error: str | None = None

    @property
    def step(self) -> Step | None:
        """The last step (the action, after any thoughts)."""
        return self.steps[-1] if self.steps else None


def repeating(partial: Partial, window: int = LOOP_WINDOW, distinct: int = LOOP_DISTINCT) -> bool:
    """Whether the last ``window`` replies of ``partial`` hold at most ``distinct`` texts (a model in a loop)."""
    steps = partial.state.get("steps") or []
    if len(steps) < window:
        return False
    # a native tool call's text may be empty: its call is part of the reply (text steps' calls come from the text)
    last = {" ".join(f"{step.raw} {step.action or ''} {step.action_input or ''}".split()) for step in steps[-window:]}
    return len(last) <= distinct


def _replay_tools(agent_ctx: AgentContext, steps: list[Step]) -> None:
    """Re-send the stateful tools' earlier calls (search sessions, python cells) to a child's fresh tools."""
    from ponder.tools.replay import replay_tool_calls

    replay_tool_calls(agent_ctx.tools, steps)


def _closing_tools(tools: list[Any]) -> None:
    from ponder.tools.registry import close_tools

    close_tools(tools)


class Stepper:
    """Runs the agent of a strategy context one step at a time from any partial run.

    Args:
        ctx: The strategy context (model, settings, agent, tool / executor / environment factories, memory).
        task: The task (env episodes: the episode's objective).
        temperature: Sampling temperature of every call (must be above 0 for distinct children).
        top_p: Nucleus sampling (``None``: the settings').
        show_actions: Env agent: show the admissible actions after the latest observation.
        think_steps: Env agent: thoughts a move may take before its action (0: a thought is a move of its own).
        actions_only: Env agent on a backend that honours grammars: every move is one of the admissible actions
            (no thoughts; ``settings.constrained_steps`` ``auto`` counts as ``on``, ``off`` stays off).

    Attributes:
        agent: ``env`` when the context has an environment factory, else the context's agent.
        max_steps: The step cap of a run (the context's, else the settings').
        env_steps: Environment actions sent so far, replays included.
        env_resets: Environments reset so far.
        env_name: The environment's name (env agent).
    """

    def __init__(self, ctx: StrategyContext, task: str, *, temperature: float, top_p: float | None = None,
                 show_actions: bool = True, think_steps: int = THINK_STEPS, actions_only: bool = False) -> None:
        self.ctx, self.task = ctx, task
        self.agent = "env" if ctx.env is not None else ctx.agent
        self.parts = agent_parts(self.agent)
        self.max_steps = ctx.max_steps or ctx.settings.max_steps
        self.temperature = temperature
        self.top_p = top_p if top_p is not None else ctx.settings.top_p
        self.show_actions = show_actions
        self.think_steps = think_steps
        self.actions_only = actions_only
        self.env_steps = 0
        self.env_resets = 0
        self.env_name = ""
        self._lock = threading.Lock()
        self._env_base: AgentContext | None = None

    def root(self) -> Partial:
        """The start of a run: the first turn and the prompt prefix (system prompt, few-shot turns, memory)."""
        if self.agent == "env":
            return self._env_root()
        from ponder.agents.runner import initial_state

        with self._session(Partial({})) as agent_ctx:
            state = initial_state(self.agent, self.task)
            state["memory"] = self._recall(agent_ctx)
        return Partial(state)

    def _env_root(self) -> Partial:
        from ponder.agents.env import env_context, initial_state

        assert self.ctx.env is not None
        env = self.ctx.env()
        try:
            reset: EnvReset = env.reset()
            self._count(0, resets=1)
            self.env_name = env.name
            settings = self.ctx.settings
            if self.actions_only and settings.constrained_steps == "auto" and self.ctx.model.capabilities.grammar:
                settings = settings.model_copy(update={"constrained_steps": "on"})
            base = env_context(env, reset, self.ctx.model, settings, self.max_steps, None, self.show_actions)
        finally:
            env.close()
        self._env_base = dataclasses.replace(base, env=None, think=not self.actions_only)
        state: dict[str, Any] = dict(initial_state(self.task, reset))
        state["memory"] = self._recall(base)
        return Partial(state)

    def _recall(self, agent_ctx: AgentContext) -> dict[str, Any]:
        return recalled_memory(self.parts, agent_ctx, self.ctx.memory, self.task)

    def _count(self, steps: int, resets: int = 0) -> None:
        with self._lock:
            self.env_steps += steps
            self.env_resets += resets

    @contextlib.contextmanager
    def _session(self, partial: Partial) -> Iterator[AgentContext]:
        """A context of this run's own: a replayed env fork, fresh tools (stateful calls replayed) or executor."""
        ctx, settings = self.ctx, self.ctx.settings
        if self.agent == "env":
            assert ctx.env is not None and self._env_base is not None
            env = ctx.env()
            try:
                replay(env, partial.actions)
                self._count(len(partial.actions), resets=1)
                yield dataclasses.replace(self._env_base, env=env)
            finally:
                env.close()
            return
        from ponder.agents.runner import make_context

        if self.agent == "pal":
            from ponder.tools.sandbox import open_sandbox

            executor = ctx.executor() if ctx.executor else open_sandbox(settings)
            try:
                yield make_context(settings, ctx.model, [], executor, "pal")
            finally:
                executor.close()
            return
        from ponder.tools.registry import build_tools

        tools = ctx.tools() if ctx.tools else build_tools(settings.tools, settings)
        try:
            agent_ctx = make_context(settings, ctx.model, tools, None, "react")
            if partial.state.get("steps"):
                _replay_tools(agent_ctx, partial.steps)
            yield agent_ctx
        finally:
            _closing_tools(tools)

    def _sampling(self, agent_ctx: AgentContext, seed: int) -> AgentContext:
        params = agent_ctx.params.model_copy(update={"temperature": self.temperature, "top_p": self.top_p,
                                                     "seed": seed})
        return dataclasses.replace(agent_ctx, params=params)

    def step(self, partial: Partial, seed: int, lessons: str | None = None, exclude: Sequence[str] = ()) -> Moved:
        """One move from ``partial`` in a session of its own (closed after), sampled with ``seed``.

        ``lessons`` (reflections on failed attempts) are put in front of the first turn of this call's prompt.
        ``exclude``: env actions left out of the admissible actions shown (and of the grammar) for this move, so
        a node's next expansion samples actions its children have not taken (ignored when none would be left).
        """
        start = time.perf_counter()
        if exclude and partial.state.get("admissible"):
            left = [a for a in partial.state["admissible"] if a not in set(exclude)]
            if left:
                partial = Partial({**partial.state, "admissible": left}, partial.actions)
        try:
            with self._session(partial) as agent_ctx:
                return self._move(partial, agent_ctx, lessons, seed, start)
        except Exception as exc:  # the environment or a tool failed while the session was set up
            return self._failed(partial, exc, seed, start)

    def rollout(self, partial: Partial, seeds: list[int], lessons: str | None = None,
                stop: Callable[[list[Moved]], bool] | None = None) -> list[Moved]:
        """Steps from ``partial`` in one session until the run ends, ``seeds`` (one per step) run out or ``stop``.

        ``stop`` sees the steps so far before each further step (a budget check).
        """
        moves: list[Moved] = []
        if partial.terminal or not seeds:
            return moves
        start = time.perf_counter()
        try:
            with self._session(partial) as agent_ctx:
                current = partial
                for seed in seeds:
                    if stop is not None and stop(moves):
                        break
                    moved = self._move(current, agent_ctx, lessons, seed, start)
                    moves.append(moved)
                    current, start = moved.partial, time.perf_counter()
                    if current.terminal:
                        break
        except Exception as exc:  # a failing session: the rollout ends in an error
            moves.append(self._failed(moves[-1].partial if moves else partial, exc, seeds[0], start))
        return moves

    def _move(self, partial: Partial, agent_ctx: AgentContext, lessons: str | None, seed: int,
              start: float) -> Moved:
        """One step; for the env agent, up to ``think_steps`` thoughts and the action after them (one move)."""
        moved = self._advance(partial, self._sampling(agent_ctx, seed), lessons, seed, start)
        calls = 1
        while self._thinking(moved) and calls <= self.think_steps:
            more = self._advance(moved.partial, self._sampling(agent_ctx, seed + THINK_SEED_STRIDE * calls),
                                 lessons, seed, start)
            moved = Moved(more.partial, [*moved.steps, *more.steps], more.seconds, seed, more.error)
            calls += 1
        return moved

    def _thinking(self, moved: Moved) -> bool:
        step = moved.step
        return (self.agent == "env" and not moved.partial.terminal and step is not None and step.kind == "action"
                and step.action == "think")

    def _advance(self, partial: Partial, agent_ctx: AgentContext, lessons: str | None, seed: int,
                 start: float) -> Moved:
        state = partial.state
        if lessons:
            memory = dict(state.get("memory") or {})
            memory["lessons"] = "\n\n".join(t for t in (memory.get("lessons"), lessons) if t)
            state = {**state, "memory": memory}
        runtime = Runtime(context=agent_ctx)
        try:
            update = self.parts.step(state, runtime)
        except Exception as exc:  # the environment or a tool failed mid-step
            return self._failed(partial, exc, seed, start)
        new = apply_update(partial.state, update)
        target = self.parts.route(new, runtime)
        if target == MAX_STEPS:
            new["status"] = "max_steps"
        elif target == GIVE_UP:
            new["status"] = "parse_error"
        step = update["steps"][-1]
        actions = partial.actions
        if new.get("env_steps", 0) > partial.state.get("env_steps", 0):
            actions = (*actions, step.action or "")
            self._count(1)
        return Moved(Partial(new, actions), [step], time.perf_counter() - start, seed)

    @staticmethod
    def _failed(partial: Partial, exc: Exception, seed: int, start: float) -> Moved:
        state = {**partial.state, "status": "error", "error": describe_error(exc)}
        return Moved(Partial(state, partial.actions), [], time.perf_counter() - start, seed, describe_error(exc))

    def trace(self, partial: Partial) -> Trace:
        """What a verifier sees of ``partial``."""
        state = partial.state
        env, done = self.agent == "env", bool(partial.state.get("done"))
        return Trace(task=self.task, agent=self.agent, steps=partial.steps, final_answer=state.get("final_answer"),
                     status=partial.status, reward=float(state.get("reward", 0.0) or 0.0),
                     max_reward=self.ctx.max_reward, done=done, won=partial.won if env and done else None,
                     progress=state.get("progress"))

    def trajectory(self, partial: Partial, metadata: dict[str, Any] | None = None) -> Trajectory:
        """The trajectory of the run that ends at ``partial`` (status ``max_steps`` when it had not ended)."""
        state, steps = partial.state, partial.steps
        prompt = (state.get("memory") or {}).get("prompt", {})
        meta: dict[str, Any] = {**self.ctx.metadata, **prompt, **(metadata or {})}
        if self.agent == "env":
            meta.update(env=self.env_name, reward=float(state.get("reward", 0.0) or 0.0),
                        env_steps=int(state.get("env_steps", 0)))
        return Trajectory(task=self.task, agent=self.agent, model=self.ctx.model.spec,
                          backend=self.ctx.model.backend_name, steps=steps, final_answer=state.get("final_answer"),
                          status=partial.status or "max_steps", error=state.get("error"),
                          usage=Usage.from_steps(steps), metadata=meta)
