"""ReAct in an environment (the ReAct ALFWorld setup): think / act / observe over any :class:`~ponder.envs.base.Env`.

START → recall → agent ─┬─ action ─► act (env.step) ─┬─ done ─► finish ─► remember → END
                        │                            ├─► agent
                        │                            └─ step cap ─► max_steps ─► remember
                        ├─ think ─► agent ("Observation: OK.")
                        ├─ malformed ─► agent (a format reminder as the observation), or give_up ─► remember
                        └─ step cap ─► max_steps ─► remember

Each turn the model writes one line: ``think: <reasoning>`` or one action (the first non-empty line counts;
a leading ``>``, ``Action:`` or backticks are dropped, ``Thought:`` counts as ``think:``). Actions go to
``env.step`` verbatim, except that an action matching an admissible action up to case, spacing and a final
period is sent in the admissible spelling. Whatever the environment answers, invalid actions included, is the
next observation. Empty replies and over-long lines are malformed: they are answered with a format reminder
and end the run (``parse_error``) after ``max_parse_failures`` in a row.

The contract with environments (all optional, besides the :class:`Env` protocol):

* ``env.instructions: str`` (or ``EnvReset.info["instructions"]``): the action format, put into the system
  prompt (default: ``prompts/env_instructions_default.txt``).
* ``env.examples: str`` (or ``EnvReset.info["examples"]``): the name of a few-shot set in
  ``prompts/env_examples.json`` (none by default; a MiniWoB env would ship its own or none).
* ``EnvReset.admissible_actions`` / ``EnvStep.admissible_actions``: shown after the latest observation only
  (``show_actions``), so the history stays short.
* ``EnvStep.info["won"]`` / ``["lost"]``: the outcome; without ``won``, success means ``done`` with a
  positive total reward. ``EnvStep.reward`` is the reward of that step (totals are summed).

:func:`run_env_agent` plays one episode and returns an :class:`EnvRun` (trajectory, reward, done, success,
env steps); :meth:`EnvRun.to_result` turns it into the suite's :class:`~ponder.envs.base.EpisodeResult`.
Trajectory status: ``solved`` only for a won episode; ``max_steps`` / ``parse_error`` as in ReAct; ``error``
for a lost episode (``final_answer="lost"``) or a failing environment (``error`` set).
"""

from __future__ import annotations

import operator
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from ponder.agents.deps import model_step
from ponder.core.environment import Env, EnvReset
from ponder.core.io import append_jsonl
from ponder.core.prompts import load_json_prompt, load_prompt, render
from ponder.core.records import Step, Trajectory, Usage
from ponder.envs.base import Episode, EpisodeResult
from ponder.memory.nodes import compose, recall, remember
from ponder.models.base import GenerationParams, Message, ModelBackend

if TYPE_CHECKING:
    from ponder.envs.base import EvalContext
    from ponder.memory.context import MemoryContext

#: The model must never write the environment's answer; one line per turn is enough.
ENV_STOP = ["\nObservation", "Observation:", "\n>"]  # not "\n\n": a reply may start with blank lines
THINK_OBSERVATION = "OK."
AGENT_NAME = "env"
TRAJECTORY_FILE = "trajectories.jsonl"

_LABEL = re.compile(r"^(?:>\s*|(?:action|command)\s*\d*\s*:\s*)+", re.IGNORECASE)
_THINK = re.compile(r"^(?:think|thought)\s*\d*\s*:\s*", re.IGNORECASE)


class EnvAgentState(TypedDict, total=False):
    """State of one episode."""

    task: str
    messages: Annotated[list[Message], operator.add]
    steps: Annotated[list[Step], operator.add]
    pending: Step | None
    admissible: list[str] | None
    reward: float
    done: bool
    won: bool
    env_steps: int
    final_answer: str | None
    status: str | None
    parse_failures: int
    prefix: list[Message] | None
    lessons: str | None
    memory: dict[str, Any] | None


@dataclass
class EnvAgentDeps:
    """Dependencies of the env-agent graph.

    Attributes:
        model: The model backend.
        env: The environment, already reset by the caller (:func:`run_env_agent` does it).
        params: Sampling parameters (the graph adds its stop sequences).
        max_steps: Model calls allowed per episode (thoughts included).
        max_parse_failures: Consecutive malformed replies before the episode ends with ``parse_error``.
        max_action_chars: Longer action lines are malformed (prose, not a command).
        show_actions: Show the admissible actions (when known) after the latest observation.
        instructions: The action format put into the system prompt.
        examples: Few-shot turns put after the system prompt.
        memory: Reflexion / ExpeL memory for this episode, or ``None``.
    """

    model: ModelBackend
    env: Env
    params: GenerationParams = field(default_factory=GenerationParams)
    max_steps: int = 30
    max_parse_failures: int = 3
    max_action_chars: int = 200
    show_actions: bool = True
    instructions: str = ""
    examples: list[Message] = field(default_factory=list)
    memory: MemoryContext | None = None


@dataclass
class ParsedTurn:
    """One parsed reply: ``think``, ``action`` or ``error`` (malformed, with ``problem``)."""

    kind: str
    text: str = ""
    problem: str = ""


def parse_turn(text: str, max_action_chars: int = 200) -> ParsedTurn:
    """Parse one reply into a thought or an action; never raises."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line.strip("`*\"' ")).strip().strip("`*").strip()
    if not line:
        return ParsedTurn("error", problem="the reply was empty.")
    think = _THINK.match(line)
    if think:
        thought = line[think.end():].strip()
        return ParsedTurn("think", thought) if thought else ParsedTurn("error", problem="the thought is empty.")
    if len(line) > max_action_chars:
        return ParsedTurn("error", problem=f"an action is a short command (at most {max_action_chars} characters).")
    return ParsedTurn("action", line)


def _norm(action: str) -> str:
    return " ".join(action.lower().split()).rstrip(".!")


def match_admissible(action: str, admissible: list[str] | None) -> str:
    """``action`` in the admissible spelling when it matches one up to case, spacing and a final period."""
    if admissible:
        key = _norm(action)
        for candidate in admissible:
            if _norm(candidate) == key:
                return candidate
    return action


def with_actions(messages: list[Message], admissible: list[str] | None, show: bool) -> list[Message]:
    """``messages`` with the admissible actions appended to the last observation only."""
    if not show or not admissible or not messages or messages[-1]["role"] != "user":
        return messages
    last = messages[-1]
    shown = f"{last['content']}\nAdmissible actions: {', '.join(admissible)}"
    return [*messages[:-1], {"role": "user", "content": shown}]


def initial_state(task: str, reset: EnvReset) -> EnvAgentState:
    """The graph input: the first observation as the first user turn."""
    return {"task": task, "messages": [{"role": "user", "content": reset.observation.strip()}], "steps": [],
            "pending": None, "admissible": reset.admissible_actions, "reward": 0.0, "done": False, "won": False,
            "env_steps": 0, "final_answer": None, "status": None, "parse_failures": 0}


def _turn_messages(text: str, observation: str) -> list[Message]:
    return [{"role": "assistant", "content": text}, {"role": "user", "content": f"Observation: {observation}"}]


def build_env_agent_graph(deps: EnvAgentDeps) -> Any:
    """Build and compile the env-agent graph for ``deps``."""
    system = render("env_system", instructions=deps.instructions or load_prompt("env_instructions_default").strip())
    examples = list(deps.examples)
    prefix: list[Message] = [{"role": "system", "content": system}, *examples]
    params = deps.params.model_copy(update={"n": 1, "stop": [*deps.params.stop, *ENV_STOP]})

    def recall_node(state: EnvAgentState) -> dict[str, Any]:
        return recall(deps.memory, state["task"], AGENT_NAME, system, examples)

    def agent(state: EnvAgentState) -> dict[str, Any]:
        index = len(state["steps"])
        history = with_actions(state["messages"], state.get("admissible"), deps.show_actions)
        start = time.perf_counter()
        completion = deps.model.generate(compose(state.get("prefix") or prefix, history, state.get("lessons")),
                                         params)[0]
        seconds = time.perf_counter() - start
        turn = parse_turn(completion.text, deps.max_action_chars)
        if turn.kind == "action":
            action = match_admissible(turn.text, state.get("admissible"))
            return {"pending": model_step(index, "action", completion, seconds, action=action)}
        if turn.kind == "think":
            step = model_step(index, "action", completion, seconds, thought=turn.text, action="think",
                              observation=THINK_OBSERVATION)
            return {"steps": [step], "messages": _turn_messages(f"think: {turn.text}", THINK_OBSERVATION),
                    "parse_failures": 0}
        problem = turn.problem
        if completion.finish_reason == "length":
            problem += " The reply was cut off at the token limit: be brief."
        hint = " from the admissible actions" if state.get("admissible") and deps.show_actions else ""
        reminder = render("env_format_reminder", problem=problem, hint=hint)
        step = model_step(index, "parse_error", completion, seconds, observation=reminder)
        return {"steps": [step], "messages": _turn_messages(completion.text.strip(), reminder),
                "parse_failures": state.get("parse_failures", 0) + 1}

    def act(state: EnvAgentState) -> dict[str, Any]:
        pending = state["pending"]
        assert pending is not None and pending.action is not None
        start = time.perf_counter()
        result = deps.env.step(pending.action)
        seconds = time.perf_counter() - start
        observation = result.observation.strip()
        step = pending.model_copy(update={"observation": observation, "tool_seconds": seconds})
        reward = state.get("reward", 0.0) + float(result.reward)
        won = bool(result.info["won"]) if "won" in result.info else (result.done and reward > 0)
        return {"steps": [step], "messages": _turn_messages(pending.action, observation), "pending": None,
                "parse_failures": 0, "admissible": result.admissible_actions, "reward": reward,
                "done": bool(result.done), "won": won, "env_steps": state.get("env_steps", 0) + 1}

    def finish(state: EnvAgentState) -> dict[str, Any]:
        if state.get("won"):
            return {"status": "solved", "final_answer": "won"}
        return {"status": "error", "final_answer": "lost"}

    def max_steps(state: EnvAgentState) -> dict[str, Any]:
        return {"status": "max_steps"}

    def give_up(state: EnvAgentState) -> dict[str, Any]:
        return {"status": "parse_error"}

    def remember_node(state: EnvAgentState) -> dict[str, Any]:
        return remember(deps.memory, deps.model, deps.params, dict(state), AGENT_NAME)

    def after_agent(state: EnvAgentState) -> str:
        if state.get("pending") is not None:
            return "act"
        if state.get("parse_failures", 0) >= deps.max_parse_failures:
            return "give_up"
        return _continue_or_stop(state)

    def after_act(state: EnvAgentState) -> str:
        return "finish" if state.get("done") else _continue_or_stop(state)

    def _continue_or_stop(state: EnvAgentState) -> str:
        return "max_steps" if len(state["steps"]) >= deps.max_steps else "agent"

    graph = StateGraph(EnvAgentState)
    graph.add_node("recall", recall_node)
    graph.add_node("agent", agent)
    graph.add_node("act", act)
    graph.add_node("finish", finish)
    graph.add_node("max_steps", max_steps)
    graph.add_node("give_up", give_up)
    graph.add_node("remember", remember_node)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "agent")
    graph.add_conditional_edges("agent", after_agent, ["act", "agent", "give_up", "max_steps"])
    graph.add_conditional_edges("act", after_act, ["finish", "agent", "max_steps"])
    graph.add_edge("finish", "remember")
    graph.add_edge("max_steps", "remember")
    graph.add_edge("give_up", "remember")
    graph.add_edge("remember", END)
    return graph.compile(name="env_agent")


class EnvRun(BaseModel):
    """One played episode: the trajectory and the environment's verdict."""

    trajectory: Trajectory
    reward: float = 0.0
    done: bool = False
    success: bool = False
    env_steps: int = 0
    error: str | None = Field(None, description="Set when the environment (or our code) failed mid-episode.")

    def to_result(self, episode: Episode, *, policy: str = "agent", score: float | None = None,
                  metrics: dict[str, float] | None = None, metadata: dict[str, Any] | None = None) -> EpisodeResult:
        """The episode's :class:`EpisodeResult` (``score`` defaults to the total reward; failure from the status)."""
        status = self.trajectory.status
        failure = ""
        if self.error:
            failure = "env_error"
        elif not self.success:
            failure = {"max_steps": "max_steps", "parse_error": "parse_error"}.get(status, "wrong_answer")
        return EpisodeResult(
            episode_id=episode.id, suite=episode.suite, task=episode.task, tier=episode.tier, policy=policy,
            policy_kind="agent" if policy == "agent" else "harness", success=self.success,
            score=self.reward if score is None else score,
            metrics={"reward": self.reward, "success": float(self.success), **(metrics or {})},
            prediction=self.trajectory.final_answer, gold=episode.gold, status=status,
            failure=failure, error=self.error, usage=self.trajectory.usage, env_steps=self.env_steps,
            trajectory_ids=[self.trajectory.id], trajectory=self.trajectory, metadata=dict(metadata or {}))


def env_examples(name: str | None) -> list[Message]:
    """The few-shot turns called ``name`` in ``prompts/env_examples.json`` (none for ``None`` or ``""``)."""
    if not name:
        return []
    return list(load_json_prompt("env_examples")[name])


def make_env_deps(env: Env, reset: EnvReset, model: ModelBackend, ctx: EvalContext, max_steps: int,
                  memory: MemoryContext | None = None) -> EnvAgentDeps:
    """Dependencies for ``env`` from the evaluation context (instructions and examples from the env)."""
    s = ctx.settings
    instructions = reset.info.get("instructions") or getattr(env, "instructions", "") or ""
    examples = env_examples(reset.info.get("examples") or getattr(env, "examples", None))
    params = GenerationParams(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed)
    return EnvAgentDeps(model=model, env=env, params=params, max_steps=max_steps,
                        max_parse_failures=s.max_parse_failures, show_actions=bool(ctx.extra.get("show_actions", True)),
                        instructions=instructions, examples=examples, memory=memory)


def run_env_agent(env: Env, episode: Episode, ctx: EvalContext, *, max_steps: int | None = None,
                  write: bool = True) -> EnvRun:
    """Reset ``env`` and play one episode with the agent (``ctx.model``); returns the :class:`EnvRun`.

    Args:
        env: The environment (not closed here: the caller owns it).
        episode: The episode (its ``task`` becomes the trajectory's task).
        ctx: The evaluation context: ``ctx.model`` plays, ``ctx.memory_context`` (optional) remembers.
        max_steps: Model calls allowed (default: ``ctx.settings.max_steps``).
        write: Append the trajectory to ``ctx.out_dir / trajectories.jsonl``.

    A failing environment (an exception from ``reset`` or ``step``) ends the run with ``error`` set and the
    trajectory's status ``error``; ``KeyboardInterrupt`` and similar still propagate.
    """
    from ponder.core.errors import ConfigError

    if ctx.model is None:
        raise ConfigError("the env agent needs a model (ctx.model is None)")
    model = ctx.model
    steps_cap = max_steps or ctx.settings.max_steps
    traj = Trajectory(task=episode.task, agent=AGENT_NAME, model=model.spec,
                      backend=str(getattr(model, "backend_name", model.spec)),
                      metadata={"episode_id": episode.id, "suite": episode.suite, "env": env.name})
    state: dict[str, Any] = {}
    error: str | None = None
    start = time.perf_counter()
    try:
        reset = env.reset()
        memory = ctx.memory_context.for_run(traj.id) if ctx.memory_context is not None else None
        graph = build_env_agent_graph(make_env_deps(env, reset, model, ctx, steps_cap, memory))
        config = {"recursion_limit": 3 * steps_cap + 10}
        for update in graph.stream(initial_state(episode.task, reset), config, stream_mode="updates"):
            for node_update in update.values():
                if not node_update:
                    continue
                traj.steps.extend(node_update.get("steps", []))
                state.update({k: v for k, v in node_update.items() if k not in ("steps", "messages")})
        traj.status = state.get("status") or "error"
        traj.final_answer = state.get("final_answer")
        if state.get("memory"):
            traj.metadata["memory"] = state["memory"]
    except Exception as exc:  # the environment (or a bug) failed: a result, recorded with the error
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        traj.status, traj.error = "error", error
    finally:
        traj.usage = _usage(traj.steps, time.perf_counter() - start)
        traj.metadata.update({"reward": state.get("reward", 0.0), "env_steps": state.get("env_steps", 0)})
        if write:
            append_jsonl(Path(ctx.out_dir) / TRAJECTORY_FILE, traj)
    return EnvRun(trajectory=traj, reward=state.get("reward", 0.0), done=bool(state.get("done")),
                  success=bool(state.get("won")) and error is None, env_steps=state.get("env_steps", 0), error=error)


def _usage(steps: list[Step], wall: float) -> Usage:
    return Usage(prompt_tokens=sum(s.prompt_tokens for s in steps),
                 completion_tokens=sum(s.completion_tokens for s in steps), model_calls=len(steps),
                 tool_calls=sum(1 for s in steps if s.kind == "action" and s.action != "think"),
                 wall_seconds=round(wall, 4))
