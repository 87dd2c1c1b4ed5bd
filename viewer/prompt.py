"""The prompt a trajectory's step was generated from, rebuilt for the viewer's prompt page.

A trajectory does not store its prompts; it records the tools its prompt listed (``metadata["tools"]``) and
a fingerprint of the prefix it sent (``metadata["prompt_sha256"]``: :func:`ponder.agents.kernel.prompt_facts`).
:func:`prompt_for_step` rebuilds the prefix from today's prompt files (ReAct and PAL:
:func:`ponder.training.prompt.agent_prefix`; a native tool-calling ReAct run: its native system prompt), adds the
question turn and the turns of the steps before step ``k`` (:meth:`~ponder.core.records.Step.to_messages`), and
says whether the rebuilt prefix is the one the run sent. What cannot be rebuilt is said in ``notes``: recalled
memories (their text is not recorded), observations the context budget elided, the system prompt of agents
other than ReAct and PAL. A record never makes it raise.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ponder.core.hashing import messages_sha256
from ponder.core.records import Step, Trajectory
from ponder.training.prompt import agent_prefix, question_turn

#: Agents whose prefix can be rebuilt from the prompt files.
REBUILT_AGENTS = ("react", "pal")
_DEFAULT_TOOLS = ("calculator", "python")


@dataclass
class PromptView:
    """The conversation before one step's model call, as far as it can be rebuilt.

    Attributes:
        messages: ``{"role", "content"}`` dicts: the prefix (when rebuilt), the question, the earlier steps' turns.
        exact: Whether the rebuilt prefix's fingerprint equals the recorded ``metadata["prompt_sha256"]``;
            ``None`` when the run recorded none; ``False`` too when the run recorded one but no prefix could be
            rebuilt (the messages then lack what the run sent first).
        notes: What the reader must know about the messages (what differs from what the model saw).
    """

    messages: list[dict[str, str]] = field(default_factory=list)
    exact: bool | None = None
    notes: list[str] = field(default_factory=list)


def prompt_for_step(traj: Trajectory, k: int) -> PromptView:
    """The prompt of step ``k``'s model call (``k`` is 0-based into ``traj.steps``).

    Args:
        traj: The trajectory.
        k: The step; ``k >= len(traj.steps)`` gives the whole conversation (every step's turns), ``k <= 0`` the
            first call's prompt.

    Returns:
        The messages, whether the prefix is exactly what the run sent, and notes. Never raises on a record: what
        cannot be rebuilt becomes a note.
    """
    view = PromptView()
    meta: dict[str, Any] = traj.metadata if isinstance(traj.metadata, dict) else {}
    steps = list(traj.steps[: max(0, k)])
    prefix = _prefix(traj, meta, view.notes)
    recorded = meta.get("prompt_sha256")
    recorded = recorded if isinstance(recorded, str) and recorded else None
    if prefix is None:
        view.exact = None if recorded is None else False  # the run sent a prefix that is not shown
    else:
        view.messages.extend(_plain(m) for m in prefix)
        if recorded is None:
            view.notes.append("The run recorded no prompt fingerprint: the rebuilt prefix cannot be checked.")
        else:
            view.exact = messages_sha256(prefix) == recorded
            if not view.exact:
                view.notes.append("Rebuilt from today's prompt files: the run's prompt fingerprint differs (the "
                                  "prompt files or the tool set changed since the run, or memory added to it).")
    view.notes += _memory_notes(meta.get("memory"))
    view.messages.append(_plain(question_turn(traj.task)))
    for step in steps:
        view.messages.extend(_step_messages(step))
    view.notes += _elision_notes(meta.get("elided_observations"))
    if k > len(traj.steps):
        view.notes.append(f"Step {k} is past the run's {len(traj.steps)} steps: the whole conversation is shown.")
    return view


def _prefix(traj: Trajectory, meta: dict[str, Any], notes: list[str]) -> list[dict[str, Any]] | None:
    """The rebuilt prefix, or ``None`` (with a note saying why)."""
    if traj.agent not in REBUILT_AGENTS:
        notes.append(f"The system prompt and examples of agent {traj.agent!r} are not rebuilt here: only the "
                     "question and the steps' turns are shown.")
        return None
    tools = _tools(traj.agent, meta.get("tools"))
    native = traj.agent == "react" and any(s.tool_call_id is not None for s in traj.steps)
    try:
        return [dict(m) for m in _built_prefix(traj.agent, tools, native)]
    except Exception as exc:  # ConfigError (a tool that no longer exists), a missing corpus, a broken settings file
        notes.append(f"The system prompt could not be rebuilt ({_one_line(exc)}): only the question and the "
                     "steps' turns are shown.")
        return None


def _tools(agent: str, recorded: object) -> tuple[str, ...]:
    if isinstance(recorded, list):
        return tuple(str(t) for t in recorded)
    return _DEFAULT_TOOLS if agent == "react" else ()


@functools.lru_cache(maxsize=64)
def _built_prefix(agent: str, tools: tuple[str, ...], native: bool) -> tuple[dict[str, Any], ...]:
    """The prefix from the prompt files, built once per agent and tool set (tools may load a search index).

    MCP servers are left out of the settings: the viewer never connects to one (their tools are in ``tools``
    by name, which makes the rebuild fail with a clear note instead).
    """
    from ponder.core.settings import load_settings

    if native:
        from ponder.agents.react_native import native_system_prompt

        return ({"role": "system", "content": native_system_prompt(tools)},)
    return tuple(agent_prefix(agent, tools, load_settings(mcp_servers=[])))


def _step_messages(step: Step) -> list[dict[str, str]]:
    """A step's turns as ``{"role", "content"}`` (a native tool call is written into the reply's text)."""
    out = []
    for message in step.to_messages():
        plain = _plain(message)
        for call in message.get("tool_calls") or ():
            function = (call.get("function") if isinstance(call, dict) else None) or {}
            plain["content"] += f"\n[tool call {function.get('name', '?')}: {function.get('arguments', '')}]"
        out.append(plain)
    return out


def _plain(message: Any) -> dict[str, str]:
    role = str(message.get("role", "?")) if isinstance(message, dict) else "?"
    content = message.get("content") if isinstance(message, dict) else message
    if not isinstance(content, str):
        content = "" if content is None else json.dumps(content, ensure_ascii=False, default=str)
    return {"role": role, "content": content}


def _memory_notes(log: object) -> list[str]:
    """What memory put into the prompt, as far as the record says (the recalled text itself is not recorded)."""
    if not isinstance(log, dict):
        return []
    retrieved = log.get("retrieved")
    items = [r for r in retrieved if isinstance(r, dict)] if isinstance(retrieved, list) else []
    if not items:
        return [f"Memory was on (mode {log.get('mode', '?')}) but recalled nothing into this prompt."]
    kinds = _counts(str(r.get("kind", "?")) for r in items)
    ids = ", ".join(str(r.get("id", "?")) for r in items[:12]) + (" …" if len(items) > 12 else "")
    return [f"Memory (mode {log.get('mode', '?')}) recalled {kinds} into the run's prompt (ids {ids}); their "
            "text is not recorded in the trajectory, so the prompt shown lacks them (insights go into the system "
            "prompt, experiences after the examples, lessons before the question)."]


def _elision_notes(elided: object) -> list[str]:
    if isinstance(elided, int) and not isinstance(elided, bool) and elided > 0:
        return [f"The context budget elided up to {elided} earlier observation(s) (and the replies before them) "
                "from the run's later prompts: the model saw less than the full history shown here."]
    return []


def _counts(kinds: Iterable[str]) -> str:
    counted: dict[str, int] = {}
    for kind in kinds:
        counted[kind] = counted.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counted.items())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
