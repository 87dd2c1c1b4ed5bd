"""Bring a fresh :class:`~ponder.tools.base.ToolBox` to the state a ReAct run left its tools in.

A tree search (``beam``, ``lats``) continues a ReAct run from a partial trajectory in a new branch with its
own tools. Most tools are pure functions of their input (:data:`STATELESS_TOOLS`), but ``search`` /
``lookup`` / ``retrieve`` share a session (the page ``lookup`` reads, the next result index) and ``python``
keeps its variables in a sandbox session. :func:`replay_tool_calls` re-sends, in order, every tool call of
the steps whose tool keeps state, so the branch's next call is answered as it would have been in the
original run. Model-written code replayed this way runs in the fresh toolbox's sandbox, like the first time.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.core.records import Step
from ponder.tools.base import ToolBox

#: Tools whose answer depends only on their input: their calls need no replay.
STATELESS_TOOLS = frozenset({"calculator"})


def stateful_calls(tools: ToolBox, steps: Sequence[Step]) -> list[Step]:
    """The steps whose tool call changes state: ``action`` steps naming a stateful tool of ``tools``.

    Format failures (``parse_error``), final answers and calls of unknown tools (answered with an error, no
    state) are left out.
    """
    known = set(tools.names())
    return [s for s in steps if s.kind == "action" and s.action in known and s.action not in STATELESS_TOOLS]


def replay_tool_calls(tools: ToolBox, steps: Sequence[Step]) -> list[str]:
    """Re-send, in order, the calls of ``steps`` to stateful tools; their observations now.

    Args:
        tools: A fresh toolbox (new search session, new sandbox session), owned by the caller.
        steps: A ReAct run's steps (a prefix of a trajectory), in order.

    Returns:
        The observation of each replayed call, in order (compare with the steps' own observations to check
        that the branch reached the same state).
    """
    return [tools.call(step.action or "", step.action_input or "").observation
            for step in stateful_calls(tools, steps)]
