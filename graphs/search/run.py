"""One search over one task: the stepper, the verifier, the tree of partial runs and everything spent.

Beam search and LATS share :class:`SearchRun`: it adds nodes to the :class:`~ponder.graphs.search.tree.SearchTree`
(each with the partial run it stands for), scores partial runs with the verifier (its tokens counted), hands out
sampling seeds and says whether the token budget is spent. It is the runtime context of the strategies'
LangGraph graphs (the nodes read it as ``runtime.context``), so it is safe to use from the ``Send`` branches'
threads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ponder.core.records import Usage
from ponder.graphs.search.stepper import Moved, Partial, Stepper
from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.graphs.self_consistency.stopping import Budget
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.verifiers.base import Score, Verifier, VerifyContext
from ponder.graphs.verifiers.registry import build_verifier, verify_context
from ponder.models.base import ModelBackend
from ponder.models.batching import MicroBatcher

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.graphs.strategies.spec import RunSpec

#: Sampling temperature of the children when neither the spec nor the settings give one above 0.
DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Sampling:
    """How children are sampled: temperature, nucleus and the first seed (call ``i`` uses ``seed + i``)."""

    temperature: float
    top_p: float | None
    seed: int

    @classmethod
    def of(cls, spec: RunSpec, settings: Settings) -> Sampling:
        """``spec.sample_temperature``, else the settings' temperature when above 0, else 0.7; seeds likewise."""
        temperature = spec.sample_temperature
        if temperature is None:
            temperature = settings.temperature if settings.temperature > 0 else DEFAULT_TEMPERATURE
        seed = spec.sample_seed if spec.sample_seed is not None else (settings.seed or 0)
        return cls(temperature, spec.sample_top_p, seed)


def resolve_verifier(spec: RunSpec, ctx: StrategyContext, agent: str,
                     verifier: Verifier | None = None) -> tuple[Verifier, VerifyContext]:
    """The verifier (``verifier`` when given, else ``spec.verifier`` through the registry) and its context."""
    chosen = verifier if verifier is not None else build_verifier(spec.verifier, agent=agent,
                                                                  env=ctx.env is not None, prm=spec.prm)
    return chosen, verify_context(ctx)


def _batcher(model: ModelBackend, spec: RunSpec) -> MicroBatcher | None:
    """A micro-batcher for a backend that decodes explicit batches only (transformers); ``None`` otherwise.

    A continuous-batching backend (the llama.cpp engine, an OpenAI-compatible server) decodes the branches'
    concurrent calls together by itself.
    """
    caps = model.capabilities
    if not spec.batch or caps.continuous_batching or not caps.batched_decoding:
        return None
    return MicroBatcher(model, window=spec.batch_window, max_batch=max(spec.expansions * spec.beam_width, 2))


class SearchRun:
    """The state of one search that is not LangGraph state: the tree, the partial runs, the spending.

    Args:
        strategy: ``beam`` or ``lats`` (the tree's ``strategy``).
        task: The task.
        ctx: The strategy context.
        spec: The run options (sampling, budget, verifier).
        config: The search's settings, recorded in the tree.
        verifier: A verifier to use instead of ``spec.verifier`` (tests, callers with their own).
        actions_only: Env episodes on a grammar backend: every move is one admissible action (see
            :class:`~ponder.graphs.search.stepper.Stepper`).

    Attributes:
        stepper: Runs the agent one step at a time.
        tree: The search tree record (node ``i`` stands for ``partials[i]``).
        partials: The partial run of each node.
        usage: Everything spent: the agent's steps, the verifier's and the reflections' calls.
        budget: The token (or sample) cap, if any.
        duplicates: Sampled children dropped because a sibling took the same action.
        batcher: Gathers the ``Send`` branches' calls into batches for a backend that decodes explicit batches
            only (``None``: the backend is called directly; a continuous-batching one batches by itself).
    """

    def __init__(self, strategy: str, task: str, ctx: StrategyContext, spec: RunSpec, config: dict[str, Any],
                 verifier: Verifier | None = None, actions_only: bool = True) -> None:
        sampling = Sampling.of(spec, ctx.settings)
        self.batcher = _batcher(ctx.model, spec)
        if self.batcher is not None:
            ctx = ctx.derive(model=self.batcher)
        self.ctx, self.spec = ctx, spec
        self.stepper = Stepper(ctx, task, temperature=sampling.temperature, top_p=sampling.top_p,
                               actions_only=actions_only)
        self.verifier, self.vctx = resolve_verifier(spec, ctx, self.stepper.agent, verifier)
        self.budget = Budget.parse(spec.budget)
        config = {**config, "verifier": self.verifier.name, "temperature": sampling.temperature,
                  "max_steps": self.stepper.max_steps, "budget": spec.budget, "actions_only": actions_only}
        self.tree = SearchTree(strategy=strategy, task=task, config=config)
        self.partials: list[Partial] = []
        self.usage = Usage()
        self.duplicates = 0
        self.started = time.perf_counter()
        self._seed = sampling.seed
        self._lock = threading.Lock()

    def enter(self, branches: int) -> None:
        """``branches`` ``Send`` branches start (the micro-batcher, if any, waits for their calls)."""
        if self.batcher is not None:
            self.batcher.enter(branches)

    def leave(self) -> None:
        """A ``Send`` branch ended."""
        if self.batcher is not None:
            self.batcher.leave()

    def seeds(self, count: int) -> list[int]:
        """``count`` fresh seeds (every model call of the search gets its own)."""
        with self._lock:
            out = list(range(self._seed, self._seed + count))
            self._seed += count
        return out

    def spent_tokens(self) -> int:
        """Prompt plus completion tokens spent so far (verifier and reflections included)."""
        return self.usage.total_tokens

    def over_budget(self) -> bool:
        """Whether the token budget is spent (a sample budget is the strategies' to read)."""
        return self.budget is not None and self.budget.kind == "tokens" and self.spent_tokens() >= self.budget.value

    def charge(self, usage: Usage) -> None:
        """Add ``usage`` (a verifier's or a reflection's calls) to the search's."""
        with self._lock:
            self.usage = self.usage + usage

    def score(self, partial: Partial) -> Score:
        """The verifier's score of ``partial`` (its cost charged)."""
        score = self.verifier.score(self.stepper.trace(partial), self.vctx)
        self.charge(score.usage)
        return score

    def apply_score(self, node_id: int, score: Score) -> None:
        """Record a node's score (its value until backups change it; one visit) and what scoring it cost."""
        node = self.tree.nodes[node_id]
        node.score = node.value = score.value
        node.visits = max(node.visits, 1)
        node.prompt_tokens += score.prompt_tokens
        node.completion_tokens += score.completion_tokens

    def add_root(self, partial: Partial) -> int:
        """The root node (the task, no step yet)."""
        self.partials.append(partial)
        self.tree.nodes.append(TreeNode(id=0, visits=1))
        return 0

    def add(self, parent: int, moved: Moved, score: Score | None = None, batch: int = 1) -> int:
        """A node for ``moved`` under ``parent`` (its step's cost charged); returns its id."""
        partial, step = moved.partial, moved.step
        prev = self.partials[parent].state
        usage = Usage.from_steps(moved.steps)
        self.charge(usage)
        node = TreeNode(
            id=len(self.tree.nodes), parent=parent, depth=self.tree.nodes[parent].depth + 1, batch=batch,
            action=(step.action or step.kind) if step is not None else "error",
            action_input=step.action_input if step is not None else None,
            thought=" / ".join(s.thought for s in moved.steps if s.thought),
            observation=step.observation if step is not None else moved.error,
            answer=partial.state.get("final_answer") if partial.terminal else None, status=partial.status,
            terminal=partial.terminal,
            reward=float(partial.state.get("reward", 0.0) or 0.0) - float(prev.get("reward", 0.0) or 0.0),
            prompt_tokens=usage.prompt_tokens + (score.prompt_tokens if score else 0),
            completion_tokens=usage.completion_tokens + (score.completion_tokens if score else 0))
        if score is not None:
            node.score = node.value = score.value
            node.visits = 1
        self.partials.append(partial)
        self.tree.nodes.append(node)
        return node.id

    def succeeded(self, node_id: int) -> bool:
        """A terminal node that won the episode (env) or was answered with a score of at least ``spec.accept``."""
        node, partial = self.tree.nodes[node_id], self.partials[node_id]
        if not node.terminal:
            return False
        if self.stepper.agent == "env":
            return partial.won
        return partial.status == "solved" and (node.score or 0.0) >= self.spec.accept

    def dedupe(self, parent: int, moves: list[Moved]) -> list[Moved]:
        """``moves`` without those that repeat an earlier one's (or an existing child's) action."""
        seen = {self.partials[c.id].key() for c in self.tree.children(parent)}
        kept: list[Moved] = []
        for moved in moves:
            key = moved.partial.key()
            if key in seen:
                self.duplicates += 1
                continue
            seen.add(key)
            kept.append(moved)
        return kept
