"""``LATS``: Monte-Carlo tree search over agent steps, with the verifier's values and Reflexion inside the tree.

    START → select ─┬─ Send("expand") × n ─► expand ─► gather ─┬─ Send("evaluate") × new ─► evaluate ─► simulate ─┐
                    │                                          └─ no new child ──────────────────────► simulate ─┤
                    └─ stop (won / accepted / iterations / budget / exhausted) ─► END      ◄─────────── select ◄──┘

One iteration (Zhou et al., 2023, "Language Agent Tree Search"):

- **select**: from the root, the child with the highest UCT value ``value + c * sqrt(ln(N_parent + 1) / N_child)``
  (``c`` = ``spec.exploration``) among children whose subtree is still open, down to a node that may widen:
  not terminal, not saturated, and with fewer children than ``n * ceil(sqrt(visits / n))`` (progressive widening;
  in an environment at most one child per admissible action);
- **expand**: ``n`` = ``spec.expansions`` sampled moves from it, one ``Send`` branch each (its own seed and
  session: an env fork replayed to the node, fresh tools, a fresh executor), decoded together by a
  continuous-batching backend. In an environment the actions its children already took are left out of the
  admissible actions (and the grammar) of the node's next expansion, so widening tries new actions; children
  repeating a sibling's action are dropped (``duplicates``), and an expansion that finds nothing new saturates
  the node;
- **evaluate**: each new child scored by the verifier (default for env episodes: ``env``, the reward and
  outcome; ``self`` adds the model's value), one ``Send`` branch each;
- **simulate**: from the best new child, a sampled rollout of the agent to a terminal state (at most the step
  cap; it stops early when the model loops: :func:`~ponder.graphs.search.stepper.repeating`), its nodes added
  to the tree (each may widen later);
- **backpropagate**: the terminal reward (won: 1, else the verifier's score of the last state) is averaged
  into ``value`` along the path, ``visits`` counted;
- **reflect**: every failed terminal node (and a looping rollout's end) gets a Reflexion lesson (one model
  call); the latest lessons are put in front of the first turn of every later expansion and rollout.

The search stops at the first win (env) or answer scored at least ``spec.accept``, after ``spec.iterations``
iterations (default :data:`DEFAULT_ITERATIONS` when no budget is set either), when the budget is spent (tokens:
every call counted, the verifier's and the reflections' included; samples: terminal runs explored) or when no
open node is left. New children count one visit with their score as value.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from ponder.graphs.search.evaluate import search_graph
from ponder.graphs.search.outcome import best_leaf, finish
from ponder.graphs.search.reflect import lessons_block, reflect_on
from ponder.graphs.search.run import SearchRun
from ponder.graphs.search.stepper import Moved, repeating
from ponder.graphs.strategies.base import Outcome, StrategyContext
from ponder.graphs.tracing import expanded_attributes, outcome_attributes, traced
from ponder.graphs.verifiers.base import Score, Verifier

if TYPE_CHECKING:
    from ponder.graphs.strategies.spec import RunSpec

#: Iterations when neither ``spec.iterations`` nor ``spec.budget`` is given.
DEFAULT_ITERATIONS = 10


class LATSRun(SearchRun):
    """A LATS search: the shared search state plus the saturated nodes, the lessons and the iteration caps."""

    def __init__(self, task: str, ctx: StrategyContext, spec: RunSpec, verifier: Verifier | None,
                 rollout_steps: int | None, actions_only: bool = True) -> None:
        iterations = spec.iterations or (None if spec.budget else DEFAULT_ITERATIONS)
        super().__init__("lats", task, ctx, spec, {"expansions": spec.expansions, "exploration": spec.exploration,
                                                   "iterations": iterations, "accept": spec.accept,
                                                   "rollout_steps": rollout_steps}, verifier, actions_only)
        self.iterations = iterations
        self.rollout_steps = rollout_steps
        self.saturated: set[int] = set()
        self.lessons: list[str] = []
        self.batches: list[int] = []
        self.won: int | None = None

    def width(self, node_id: int) -> int:
        """How many children ``node_id`` may have now (progressive widening).

        ``n * ceil(sqrt(visits / n))`` (``n`` until ``n`` visits, ``2n`` until ``4n``, ...), at most one per
        admissible action in an environment that lists them.
        """
        node, n = self.tree.nodes[node_id], self.spec.expansions
        limit = n * math.ceil(math.sqrt(max(node.visits, 1) / n))
        admissible = self.partials[node_id].state.get("admissible") if self.stepper.agent == "env" else None
        return min(limit, len(admissible)) if admissible else limit

    def widenable(self, node_id: int) -> bool:
        """Whether ``node_id`` gets new children when selected (not terminal, not saturated, below its width)."""
        node = self.tree.nodes[node_id]
        return (not node.terminal and node_id not in self.saturated
                and len(self.tree.children(node_id)) < self.width(node_id))

    def open(self, node_id: int) -> bool:
        """Whether ``node_id``'s subtree still has a node to expand."""
        if self.tree.nodes[node_id].terminal:
            return False
        return self.widenable(node_id) or any(self.open(child.id) for child in self.tree.children(node_id))

    def uct(self, parent_visits: int, node_id: int) -> float:
        """The UCT value of a child."""
        node = self.tree.nodes[node_id]
        return node.value + self.spec.exploration * math.sqrt(math.log(parent_visits + 1) / max(node.visits, 1))

    def select(self) -> int | None:
        """The node to expand: UCT down the tree to a node that may widen (``None``: nothing is open)."""
        if not self.open(0):
            return None
        node_id = 0
        while not self.widenable(node_id):
            visits = self.tree.nodes[node_id].visits
            kids = [child.id for child in self.tree.children(node_id) if self.open(child.id)]
            node_id = max(kids, key=lambda k: self.uct(visits, k))
        return node_id

    def tried(self, node_id: int) -> list[str]:
        """The env actions the children of ``node_id`` took (left out of the grammar of its next expansion)."""
        depth = len(self.partials[node_id].actions)
        return [self.partials[c.id].actions[depth] for c in self.tree.children(node_id)
                if len(self.partials[c.id].actions) > depth]

    def backpropagate(self, leaf: int, reward: float) -> None:
        """Average ``reward`` into the values on the path to ``leaf``; count a visit on each."""
        for node_id in self.tree.path(leaf):
            node = self.tree.nodes[node_id]
            node.visits += 1
            node.value += (reward - node.value) / node.visits

    def terminal_reward(self, node_id: int) -> float:
        """A terminal (or last reached) node's reward: 1 for a win, else its score (the value estimate)."""
        if self.partials[node_id].won:
            return 1.0
        score = self.tree.nodes[node_id].score
        return score if score is not None else self.tree.nodes[node_id].value

    def conclude(self, node_id: int) -> None:
        """A terminal node: a success ends the search; a failure gets a reflection; the reward is backed up."""
        if self.succeeded(node_id):
            self.won = node_id if self.won is None else self.won
        elif not self.over_budget():
            self.lessons.append(reflect_on(self, node_id))
        self.backpropagate(node_id, self.terminal_reward(node_id))

    def stop_reason(self, iteration: int) -> str | None:
        """Why the search stops before iteration ``iteration`` (``None``: it goes on)."""
        if self.won is not None:
            return "solved"
        if self.iterations is not None and iteration >= self.iterations:
            return "iterations"
        if self.over_budget():
            return "budget"
        if self.budget is not None and self.budget.kind == "samples":
            if sum(1 for n in self.tree.nodes if n.terminal) >= self.budget.value:
                return "budget"
        return None


class LATSState(TypedDict, total=False):
    """State of a LATS graph run (the tree itself lives in the :class:`LATSRun` context)."""

    iteration: int
    selected: int | None
    seeds: list[int]
    lessons: str | None
    exclude: list[str]
    mark: int
    moves: Annotated[list[Moved], operator.add]
    fresh: list[int]
    scores: Annotated[list[tuple[int, Score]], operator.add]
    score_mark: int
    stop_reason: str | None


class ExpandTask(TypedDict):
    """The input of one ``expand`` branch: the node, the seed, the lessons and the env actions already tried."""

    node: int
    seed: int
    lessons: str | None
    exclude: list[str]


def select(state: LATSState, runtime: Runtime[LATSRun]) -> dict[str, Any]:
    """Check the stop rules, then pick the node to expand and the seeds of its children."""
    run = runtime.context
    iteration = state.get("iteration", 0)
    reason = run.stop_reason(iteration)
    node = None if reason else run.select()
    if node is None:
        return {"stop_reason": reason or "exhausted"}
    run.enter(run.spec.expansions)
    return {"selected": node, "seeds": run.seeds(run.spec.expansions), "lessons": lessons_block(run.lessons),
            "exclude": run.tried(node),
            "mark": len(state.get("moves", [])), "score_mark": len(state.get("scores", []))}


def fan_expand(state: LATSState) -> list[Send] | str:
    """One ``expand`` branch per sampled child, or the end."""
    if state.get("stop_reason"):
        return END
    node, lessons, exclude = state["selected"], state.get("lessons"), state.get("exclude") or []
    return [Send("expand", ExpandTask(node=node, seed=seed, lessons=lessons, exclude=exclude))
            for seed in state["seeds"]]


@traced("expand", expanded_attributes)
def expand(task: ExpandTask, runtime: Runtime[LATSRun]) -> dict[str, Any]:
    """One sampled step from the selected node, in a session of its own."""
    run = runtime.context
    try:
        return {"moves": [run.stepper.step(run.partials[task["node"]], task["seed"], task["lessons"],
                                           exclude=task["exclude"])]}
    finally:
        run.leave()


def gather(state: LATSState, runtime: Runtime[LATSRun]) -> dict[str, Any]:
    """Add the new children (duplicates of a sibling's action dropped); nothing new saturates the node."""
    run = runtime.context
    node = state["selected"]
    assert node is not None
    moves = state.get("moves", [])[state.get("mark", 0):]
    moves.sort(key=lambda m: m.seed)
    kept = run.dedupe(node, moves)
    if not kept:
        run.saturated.add(node)  # sampling found nothing new: the node never widens again
    run.batches.append(len(moves))
    run.enter(len(kept))
    return {"fresh": [run.add(node, moved, batch=len(moves)) for moved in kept]}


def simulate(state: LATSState, runtime: Runtime[LATSRun]) -> dict[str, Any]:
    """Record the scores, conclude terminal children, roll out from the best open one and back the reward up."""
    run = runtime.context
    for node_id, score in state.get("scores", [])[state.get("score_mark", 0):]:
        run.apply_score(node_id, score)
    fresh = state.get("fresh") or []
    for node_id in fresh:
        if run.tree.nodes[node_id].terminal:
            run.conclude(node_id)
    open_kids = [i for i in fresh if not run.tree.nodes[i].terminal]
    if run.won is None and open_kids and not run.over_budget():
        best = max(open_kids, key=lambda i: (run.tree.nodes[i].value, -i))
        rollout(run, best, state.get("lessons"))
    return {"iteration": state.get("iteration", 0) + 1, "fresh": []}


def rollout(run: LATSRun, start: int, lessons: str | None) -> None:
    """A sampled run from ``start`` to a terminal state; its reward backed up and, after a failure, a reflection.

    It stops early at the rollout cap, when the budget is spent or when the model loops
    (:func:`~ponder.graphs.search.stepper.repeating`: a failure worth a reflection too).
    """
    depth = run.tree.nodes[start].depth
    room = max(run.stepper.max_steps - depth, 0)
    if run.rollout_steps is not None:
        room = min(room, run.rollout_steps)
    left = (run.budget.value - run.spent_tokens()) if run.budget and run.budget.kind == "tokens" else None

    def stop(moves: list[Moved]) -> bool:
        if moves and repeating(moves[-1].partial):
            return True
        return left is not None and sum(s.prompt_tokens + s.completion_tokens for m in moves for s in m.steps) >= left

    last = start
    for moved in run.stepper.rollout(run.partials[start], run.seeds(room), lessons, stop=stop):
        last = run.add(last, moved)
    if last == start:  # no rollout (rollout_steps=0, or no room): the child's own value is what is backed up
        run.backpropagate(start, run.terminal_reward(start))
        return
    run.apply_score(last, run.score(run.partials[last]))
    if run.tree.nodes[last].terminal or repeating(run.partials[last]):
        run.conclude(last)
    else:
        run.backpropagate(last, run.terminal_reward(last))


@functools.cache
def build_lats_graph() -> CompiledStateGraph:
    """The LATS graph, compiled once per process (each search passes its :class:`LATSRun` as the context)."""
    return search_graph("lats", LATSState, LATSRun, decide=("select", select), fan_moves=fan_expand,
                        move=("expand", expand), gather=("gather", gather), conclude=("simulate", simulate))


@dataclass
class LATS:
    """Language Agent Tree Search over the context's agent (env episodes when ``ctx.env`` is set).

    Args:
        spec: ``expansions`` (children per expansion), ``exploration`` (UCT ``c``), ``iterations``, ``budget``,
            ``accept``, ``verifier`` / ``prm``, ``sample_temperature`` / ``sample_top_p`` / ``sample_seed``.
        verifier: Use this verifier instead of ``spec.verifier`` (tests, callers with their own).
        rollout_steps: Most steps of one rollout (default: ``spec.rollout_steps``, else up to the run's step cap;
            0: no rollouts, the best new child's value is backed up).
        actions_only: Env episodes on a backend that honours grammars: every move (expansion and rollout) is
            one of the admissible actions, sampled under a grammar, no thoughts (a small model's thoughts loop;
            measured on the embedded model: six of six iterations lost in thought loops with thoughts allowed).
            ``settings.constrained_steps="off"`` turns the grammar off.
    """

    spec: RunSpec
    verifier: Verifier | None = None
    rollout_steps: int | None = None
    actions_only: bool = True

    @traced("lats", outcome_attributes, task_arg=1)
    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        """Search, then return the outcome (the best leaf chosen; the tree in ``records``)."""
        steps = self.rollout_steps if self.rollout_steps is not None else self.spec.rollout_steps
        run = LATSRun(task, ctx, self.spec, self.verifier, steps, self.actions_only)
        run.add_root(run.stepper.root())
        final = build_lats_graph().invoke({"iteration": 0}, {"recursion_limit": 1_000_000}, context=run)
        chosen = run.won if run.won is not None else best_leaf(run)
        return finish(run, "lats", chosen, final.get("stop_reason") or "exhausted", label,
                      {"iterations": final.get("iteration", 0), "batches": run.batches,
                       "reflections": len(run.lessons)})
