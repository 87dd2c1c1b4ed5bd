"""The search tree record: every node a search expanded, with its value, visits, reward and cost.

Beam search and LATS append one :class:`SearchTree` per task to ``<out_dir>/search.jsonl`` and put it into
the outcome's ``records``; the HTML report draws it (values, visits, rewards, the chosen path).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ponder.core.records import Usage

#: The file search trees are appended to, in a run's output folder.
SEARCH_FILE = "search.jsonl"


class TreeNode(BaseModel):
    """One node: the state after one agent step (the root: the task, no step yet).

    Attributes:
        id: The node's index in :attr:`SearchTree.nodes`.
        parent: The parent's id (``None``: the root).
        depth: Steps from the root.
        action: The step's action (tool or env command, ``think``, ``final``), ``None`` at the root.
        action_input: The tool input, if any.
        thought: The step's thought.
        observation: What came back (tool output, env observation, program result).
        answer: The final answer, when this step gave one.
        status: Set on terminal nodes (``solved``, ``max_steps``, ``parse_error``, ``error``).
        terminal: The run ends here.
        value: The backed-up value (mean of the scores below it) in [0, 1].
        visits: MCTS visits (beam: 1 for kept nodes).
        score: The verifier's score of this node when it was evaluated.
        reward: The environment's reward of this step.
        prompt_tokens: Prompt tokens of the step's model call (and its evaluation).
        completion_tokens: Completion tokens of the same.
        batch: How many expansions were decoded together with this one (one ``Send`` fan-out).
        reflection: A Reflexion note written after this failed terminal node (LATS).
        kept: Beam search kept it (``None``: not a beam search).
    """

    id: int
    parent: int | None = None
    depth: int = 0
    action: str | None = None
    action_input: str | None = None
    thought: str = ""
    observation: str | None = None
    answer: str | None = None
    status: str | None = None
    terminal: bool = False
    value: float = 0.0
    visits: int = 0
    score: float | None = None
    reward: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch: int = 1
    reflection: str | None = None
    kept: bool | None = None


class SearchTree(BaseModel):
    """The record of one search over one task.

    Attributes:
        kind: Always ``search_tree`` (what a reader of mixed JSONL checks).
        strategy: ``beam`` or ``lats``.
        task: The task.
        nodes: Every node, the root first (``id`` = index).
        chosen: The path from the root to the chosen leaf (node ids).
        answer: The chosen answer.
        success: The chosen leaf solved the task (environment won, or the label matched), when known.
        config: The search's settings (beam width, expansions, exploration constant, budget, verifier).
        usage: Everything the search spent, verifier calls included.
        stop_reason: Why it stopped (``solved``, ``budget``, ``depth``, ``exhausted``, ``iterations``).
    """

    kind: Literal["search_tree"] = "search_tree"
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    strategy: str
    task: str
    nodes: list[TreeNode] = Field(default_factory=list)
    chosen: list[int] = Field(default_factory=list)
    answer: str | None = None
    success: bool | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def path(self, node_id: int) -> list[int]:
        """The node ids from the root to ``node_id``."""
        out: list[int] = []
        current: int | None = node_id
        while current is not None:
            out.append(current)
            current = self.nodes[current].parent
        return out[::-1]

    def children(self, node_id: int) -> list[TreeNode]:
        """The children of ``node_id``, in creation order."""
        return [n for n in self.nodes if n.parent == node_id]
