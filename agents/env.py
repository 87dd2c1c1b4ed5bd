"""ReAct in an environment (the ReAct ALFWorld setup): think / act / observe over any environment.

START → recall → step ─┬─ the episode is over (env.step said done) ─► remember → END
                 ▲     ├─ parse-failure cap ─► give_up ─────────────► remember
                 │     ├─ step cap ─► max_steps ────────────────────► remember
                 └─────┴─ otherwise (the env's observation, "OK." after a thought, or a format reminder):
                         the next step

One ``step`` is a model call, its reply parsed and, for an action, the ``env.step``.

Each turn the model writes one line: ``think: <reasoning>`` or one action (the first non-empty line counts;
a leading ``>``, ``Action:`` or backticks are dropped, ``Thought:`` counts as ``think:``). Actions go to
``env.step`` verbatim, except that an action matching an admissible action up to case, spacing and a final
period is sent in the admissible spelling. Whatever the environment answers, invalid actions included, is the
next observation. Empty replies and over-long lines are malformed: they are answered with a format reminder
and end the run (``parse_error``) after ``max_parse_failures`` in a row. Under a grammar (``constrained_steps``,
:mod:`ponder.agents.grammar`) a turn can only be a thought or an action: one of the admissible actions when the
environment lists them, else a short command.

What the agent takes from an environment (besides the :class:`Env` protocol's ``reset`` / ``step``):

* ``env.instructions`` (or ``EnvReset.info["instructions"]``): the action format, put into the system
  prompt (``""``: ``prompts/env_instructions_default.txt``).
* ``env.examples`` (or ``EnvReset.info["examples"]``): the name of a few-shot set in
  ``prompts/env_examples.json`` (``""``: none).
* ``EnvReset.admissible_actions`` / ``EnvStep.admissible_actions``: shown after the latest observation only
  (``show_actions``), so the history stays short.
* ``EnvStep.info["won"]`` / ``["lost"]``: the outcome; without ``won``, success means ``done`` with a
  positive total reward. ``EnvStep.reward`` is the reward of that step (totals are summed).

:func:`run_env_agent` plays one episode and returns an :class:`EnvRun` (trajectory, reward, done, success,
env steps); ``ponder.envs.play`` turns it into a suite's result. Trajectory status: ``solved`` only for a won
episode; ``max_steps`` / ``parse_error`` as in ReAct; ``error`` for a lost episode (``final_answer="lost"``) or
a failing environment (``error`` set).
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from ponder.agents.context import EnvAgentContext, Limits, model_step
from ponder.agents.driver import TRAJECTORY_FILE, describe_error, drive
from ponder.agents.grammar import StepGrammar, env_grammar, gbnf_literal, wants_grammar
from ponder.agents.kernel import AgentParts, ModelCall, agent_skeleton, call_model
from ponder.agents.state import EnvAgentState
from ponder.agents.state import initial_state as base_state
from ponder.agents.tracing import traced_run
from ponder.core.environment import Env, EnvReset
from ponder.core.io import append_jsonl
from ponder.core.prompts import load_json_prompt, load_prompt, render
from ponder.core.records import Trajectory, Usage
from ponder.core.settings import Settings
from ponder.core.spans import agent_span
from ponder.core.tracing import current_trace_id
from ponder.memory.context import MemoryContext
from ponder.models.base import GenerationParams, Message, ModelBackend
from ponder.models.llamacpp_formats import format_metadata

#: The model must never write the environment's answer; one line per turn is enough.
ENV_STOP = ("\nObservation", "Observation:", "\n>")  # not "\n\n": a reply may start with blank lines
THINK_OBSERVATION = "OK."
AGENT_NAME = "env"

_LABEL = re.compile(r"^(?:>\s*|(?:action|command)\s*\d*\s*:\s*)+", re.IGNORECASE)
_THINK = re.compile(r"^(?:think|thought)\s*\d*\s*:\s*", re.IGNORECASE)


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
    state: EnvAgentState = {**base_state(task, reset.observation.strip())}  # type: ignore[typeddict-item]
    state.update(admissible=reset.admissible_actions, reward=0.0, done=False, won=False, env_steps=0, progress=0.0)
    return state


def _turn_messages(text: str, observation: str) -> list[Message]:
    return [{"role": "assistant", "content": text}, {"role": "user", "content": f"Observation: {observation}"}]


@functools.lru_cache(maxsize=32)
def _system(instructions: str) -> str:
    return render("env_system", instructions=instructions or load_prompt("env_instructions_default").strip())


def env_prefix(ctx: EnvAgentContext) -> tuple[str, list[Message]]:
    """The system prompt (with the env's action format, cached per format) and the env's few-shot turns."""
    return _system(ctx.instructions), list(ctx.examples)


def turn_grammar(ctx: EnvAgentContext, admissible: list[str]) -> str:
    """The grammar of a turn with ``admissible`` actions: a thought or one of them (only them without ``think``)."""
    literals = [gbnf_literal(a) for a in dict.fromkeys(admissible) if a.strip()]
    if ctx.think or not literals:
        return env_grammar(admissible, ctx.limits.max_action_chars)
    return "root ::= " + " | ".join(literals)


def step(state: EnvAgentState, runtime: Runtime[EnvAgentContext]) -> dict[str, Any]:
    """One turn: a model call parsed into an action (sent to the environment here), a thought or a format reminder."""
    ctx = runtime.context
    admissible = state.get("admissible")
    grammar = turn_grammar(ctx, admissible) if ctx.grammar is not None and admissible else None
    call = call_model(state, ctx, with_actions(state["messages"], admissible, ctx.show_actions), ENV_STOP, grammar)
    completion, seconds, index = call.completion, call.seconds, len(state["steps"])
    turn = parse_turn(completion.text, ctx.limits.max_action_chars)
    if turn.kind == "action":
        return {**act(state, ctx, index, match_admissible(turn.text, state.get("admissible")), call), **call.update()}
    if turn.kind == "think":
        thought = model_step(index, "action", completion, seconds, thought=turn.text, action="think",
                             observation=THINK_OBSERVATION)
        return {"steps": [thought], "messages": _turn_messages(f"think: {turn.text}", THINK_OBSERVATION),
                "parse_failures": 0, **call.update()}
    problem = turn.problem
    if completion.finish_reason == "length":
        problem += " The reply was cut off at the token limit: be brief."
    hint = " from the admissible actions" if state.get("admissible") and ctx.show_actions else ""
    reminder = render("env_format_reminder", problem=problem, hint=hint)
    failed = model_step(index, "parse_error", completion, seconds, observation=reminder)
    return {"steps": [failed], "messages": _turn_messages(completion.text.strip(), reminder),
            "parse_failures": state.get("parse_failures", 0) + 1, **call.update()}


def act(state: EnvAgentState, ctx: EnvAgentContext, index: int, action: str, call: ModelCall) -> dict[str, Any]:
    """Send ``action`` to the environment: the step's update (a finished episode ends the run; won: ``solved``)."""
    assert ctx.env is not None
    start = time.perf_counter()
    result = ctx.env.step(action)
    observation = result.observation.strip()
    acted = model_step(index, "action", call.completion, call.seconds, action=action, observation=observation,
                       tool_seconds=time.perf_counter() - start)
    reward = state.get("reward", 0.0) + float(result.reward)
    won = bool(result.info["won"]) if "won" in result.info else (result.done and reward > 0)
    update = {"steps": [acted], "messages": _turn_messages(action, observation), "parse_failures": 0,
              "admissible": result.admissible_actions, "reward": reward, "done": bool(result.done), "won": won,
              "env_steps": state.get("env_steps", 0) + 1,
              "progress": state.get("progress", 0.0) + float(result.info.get("intermediate_reward", 0) or 0)}
    if result.done:
        update.update(status="solved" if won else "error", final_answer="won" if won else "lost")
    return update


#: What the env agent adds to the kernel (the search stepper runs these parts one step at a time).
ENV_PARTS = AgentParts(name=AGENT_NAME, state=EnvAgentState, context=EnvAgentContext, prefix=env_prefix, step=step)


@functools.cache
def build_env_agent_graph() -> CompiledStateGraph:
    """The env-agent graph, compiled once per process (each episode passes its :class:`EnvAgentContext`)."""
    return agent_skeleton(ENV_PARTS)


class EnvRun(BaseModel):
    """One played episode: the trajectory and the environment's verdict."""

    trajectory: Trajectory
    reward: float = 0.0
    done: bool = False
    success: bool = False
    env_steps: int = 0
    error: str | None = Field(None, description="Set when the environment (or our code) failed mid-episode.")


def env_examples(name: str | None) -> list[Message]:
    """The few-shot turns called ``name`` in ``prompts/env_examples.json`` (none for ``None`` or ``""``)."""
    if not name:
        return []
    return list(load_json_prompt("env_examples")[name])


def env_context(env: Env, reset: EnvReset, model: ModelBackend, settings: Settings, max_steps: int,
                memory: MemoryContext | None = None, show_actions: bool = True) -> EnvAgentContext:
    """The runtime context of an episode in ``env`` (action format and few-shot set from the env or its reset)."""
    params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                              max_tokens=settings.max_tokens, seed=settings.seed)
    limits = Limits(max_steps=max_steps, max_parse_failures=settings.max_parse_failures)
    grammar = (StepGrammar(AGENT_NAME, env_grammar(None, limits.max_action_chars))
               if wants_grammar(settings.constrained_steps, model, AGENT_NAME) else None)
    return EnvAgentContext(
        model=model, params=params, memory=memory, env=env, show_actions=show_actions, limits=limits, grammar=grammar,
        instructions=reset.info.get("instructions") or env.instructions,
        examples=env_examples(reset.info.get("examples") or env.examples))


def run_env_agent(env: Env, task: str, *, model: ModelBackend, settings: Settings,
                  memory: MemoryContext | None = None, out_dir: str | Path | None = None,
                  max_steps: int | None = None, show_actions: bool = True, metadata: dict[str, Any] | None = None,
                  write: bool = True) -> EnvRun:
    """Reset ``env`` and play one episode with ``model``; returns the :class:`EnvRun`.

    Args:
        env: The environment (not closed here: the caller owns it).
        task: The episode's task (the trajectory's task).
        model: The backend that plays.
        settings: Sampling parameters and the parse-failure cap; ``max_steps`` and ``out_dir`` by default.
        memory: Reflexion / ExpeL memory, or ``None``.
        out_dir: Where ``trajectories.jsonl`` gets the record (default: ``settings.out_dir``).
        max_steps: Model calls allowed (default: ``settings.max_steps``).
        show_actions: Show the admissible actions after the latest observation.
        metadata: Extra fields stored in the trajectory (``env`` is added).
        write: Append the trajectory to ``out_dir / trajectories.jsonl``.

    A failing environment (an exception from ``reset`` or ``step``) ends the run with ``error`` set and the
    trajectory's status ``error``; ``KeyboardInterrupt`` and similar still propagate.
    """
    steps_cap = max_steps or settings.max_steps
    traj = Trajectory(task=task, agent=AGENT_NAME, model=model.spec, backend=model.backend_name,
                      metadata={**format_metadata(model.load_info), **(metadata or {}), "env": env.name})
    final: dict[str, Any] = {}
    error: str | None = None
    start = time.perf_counter()
    try:
        with agent_span(AGENT_NAME, task, model.spec) as current:
            if trace_id := current_trace_id():
                traj.metadata["trace_id"] = trace_id
            reset = env.reset()
            run_memory = memory.for_run(traj.id) if memory is not None else None
            ctx = env_context(env, reset, model, settings, steps_cap, run_memory, show_actions)
            if ctx.grammar is not None:
                traj.metadata["grammar"] = ctx.grammar.name
            drive(build_env_agent_graph(), dict(initial_state(task, reset)), ctx, traj, started=start, values=final)
            traced_run(current, traj)
    except Exception as exc:  # the environment (or a bug) failed: a result, recorded with the error
        error = describe_error(exc)
        traj.status, traj.error = "error", error
        traj.usage = Usage.from_steps(traj.steps, time.perf_counter() - start)
    finally:
        traj.metadata.update({"reward": final.get("reward", 0.0), "env_steps": final.get("env_steps", 0)})
        if final.get("progress"):
            traj.metadata["progress"] = final["progress"]
        if write:
            append_jsonl(Path(out_dir or settings.out_dir) / TRAJECTORY_FILE, traj)
    return EnvRun(trajectory=traj, reward=final.get("reward", 0.0), done=bool(final.get("done")),
                  success=bool(final.get("won")) and error is None, env_steps=final.get("env_steps", 0), error=error)
