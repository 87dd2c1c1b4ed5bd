"""The conversation graph: one LangGraph thread per chat, persisted by a checkpointer.

START → respond → END, run once per user turn on the chat's thread. State:

* ``turns``: the completed turns, appended by a reducer: question, final answer, status, agent, model, the
  trajectory id and the turn's steps in compact form (plain JSON, so any checkpointer can store it);
* ``question``: the input of the turn in progress.

``respond`` runs the agent (ReAct or PAL, through the ``run_turn`` callable the session supplies) on the
question with the earlier turns in context and returns the new turn. A turn interrupted with Ctrl-C never
reaches the reducer: ``turns`` then holds exactly the turns that finished, and the next question starts
from them (the interrupted question only stays in the scratch ``question`` channel until it is replaced).
"""

from __future__ import annotations

import contextvars
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ponder.core.prompts import render
from ponder.core.records import Trajectory

#: Earlier turns put into the context of a new question (the most recent ones).
HISTORY_TURNS = 6
#: Characters kept of each earlier question or answer in that context.
HISTORY_CHARS = 300
#: Characters kept of each field of a stored step.
STEP_CHARS = 600

Turn = dict[str, Any]
TurnRunner = Callable[[str, list[Turn]], Turn]


class ChatState(TypedDict, total=False):
    """State of one chat thread."""

    question: str | None
    turns: Annotated[list[Turn], operator.add]


def _clip(text: str | None, limit: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def contextual_task(question: str, turns: Sequence[Turn], *, max_turns: int = HISTORY_TURNS,
                    chars: int = HISTORY_CHARS) -> str:
    """The task the agent gets: ``question`` alone on the first turn, else with the earlier turns before it.

    Earlier turns are given compactly (one ``User:`` and one ``Assistant:`` line each, the last ``max_turns``),
    using ``prompts/chat_context.txt``.
    """
    recent = [t for t in turns if t.get("question")][-max_turns:]
    if not recent:
        return question
    lines = []
    for turn in recent:
        lines.append(f"User: {_clip(turn['question'], chars)}")
        answer = turn.get("answer")
        lines.append(f"Assistant: {_clip(answer, chars) if answer else '(no answer)'}")
    return render("chat_context", history="\n".join(lines), question=question)


def compact_steps(traj: Trajectory) -> list[dict[str, Any]]:
    """The trajectory's steps as small JSON objects (kind, thought, action, input, observation)."""
    out = []
    for step in traj.steps:
        item: dict[str, Any] = {"kind": step.kind}
        for key, value in (("thought", step.thought), ("action", step.action), ("input", step.action_input),
                           ("observation", step.observation)):
            if value:
                item[key] = value if len(value) <= STEP_CHARS else value[:STEP_CHARS] + " …"
        out.append(item)
    return out


def make_turn(question: str, traj: Trajectory, **extra: Any) -> Turn:
    """The stored record of one finished turn."""
    return {
        "question": question, "answer": traj.final_answer, "status": traj.status, "agent": traj.agent,
        "model": traj.model, "trajectory_id": traj.id, "steps": compact_steps(traj),
        "at": datetime.now(UTC).isoformat(timespec="seconds"), **extra,
    }


def build_chat_graph(run_turn: TurnRunner, checkpointer: Any = None) -> Any:
    """Build and compile the conversation graph.

    Args:
        run_turn: ``(question, earlier turns) -> turn``; runs the agent (see ``ponder.chat.session``).
        checkpointer: Where threads persist (a ``SqliteSaver`` in ``ponder chat``).
    """

    def respond(state: ChatState) -> dict[str, Any]:
        question = state.get("question")
        if not question:
            return {}
        # The agent graph runs in a fresh context so that it does not become a subgraph of this one (it
        # would inherit the checkpointer and store every inner step in the chat's database).
        turn = contextvars.Context().run(run_turn, question, list(state.get("turns") or []))
        return {"turns": [turn], "question": None}

    graph = StateGraph(ChatState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph.compile(checkpointer=checkpointer, name="chat")
