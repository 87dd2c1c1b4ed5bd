"""One chat: settings, model, agent, the current thread, and how a turn runs."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.chat.graph import Turn, build_chat_graph, contextual_task, make_turn
from ponder.chat.render import ChatRenderer
from ponder.chat.streaming import StreamingModel
from ponder.chat.threads import ThreadStore, check_thread_id
from ponder.core.errors import ConfigError
from ponder.core.records import Trajectory
from ponder.core.settings import Settings
from ponder.core.types import AgentName, MemoryMode
from ponder.graphs.strategies.spec import RunSpec

if TYPE_CHECKING:
    from ponder.graphs.self_consistency import SampleRecord
    from ponder.graphs.strategies.base import Outcome
    from ponder.memory.schema import MemoryStore
    from ponder.models.base import ModelBackend

log = logging.getLogger("ponder.chat")

#: Most samples a chat turn runs (``--samples``, ``/samples``).
MAX_SAMPLES = 64


@dataclass
class ChatSession:
    """The state of one ``ponder chat`` process.

    Attributes:
        settings: The settings (``model`` follows ``/model``).
        store: The thread database.
        renderer: Terminal output.
        spec: How a turn runs (agent, samples and vote, trials, memory, ...): set by the slash commands
            generated from :class:`~ponder.graphs.strategies.spec.RunSpec`; ``agent`` and ``memory`` always set.
        thread_id: The current thread.
        model: The loaded backend (see :meth:`load_model`).
        last: The last finished turn of this process, and its trajectory (``/memory``).
        memory_store: The memory store, opened at first use (tests inject one).
    """

    settings: Settings
    store: ThreadStore
    renderer: ChatRenderer
    spec: RunSpec = field(default_factory=lambda: RunSpec(agent="react", memory="none"))
    thread_id: str = ""
    model: ModelBackend | None = None
    last: Turn | None = None
    last_traj: Trajectory | None = None
    memory_store: MemoryStore | None = None
    _graph: Any = field(default=None, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def open(cls, settings: Settings, renderer: ChatRenderer, *, db_path: Path | str,
             thread_id: str | None = None, spec: RunSpec | None = None) -> ChatSession:
        """Open the thread database and start a new thread, or resume ``thread_id``.

        Args:
            settings: The settings.
            renderer: Terminal output.
            db_path: The thread database.
            thread_id: Resume this thread (default: a new one).
            spec: How turns run (default: one run of the settings' agent with the settings' memory).

        Raises:
            ConfigError: for an unknown or malformed ``thread_id``, or a spec a chat cannot run.
        """
        store = ThreadStore(db_path)
        session = cls(settings=settings, store=store, renderer=renderer)
        spec = spec or RunSpec()
        session.configure(agent=spec.agent or settings.agent, memory=spec.memory or settings.memory,
                          **spec.model_dump(exclude_unset=True, exclude={"agent", "memory"}))
        if thread_id is not None:
            session.resume(thread_id)
        else:
            session.thread_id = store.new_id()
        return session

    @property
    def agent(self) -> AgentName:
        """The agent of the next turns (``/agent``)."""
        return self.spec.agent or self.settings.agent  # type: ignore[return-value]

    @property
    def samples(self) -> int:
        """Samples per turn (``/samples``): above 1, a turn is a self-consistency vote."""
        return self.spec.samples

    @property
    def memory_mode(self) -> MemoryMode:
        """The memory of the next turns (``/memory``)."""
        return self.spec.memory or "none"

    def configure(self, **changes: Any) -> RunSpec:
        """Change how the next turns run; every change is checked by :class:`RunSpec` (values may be text).

        Raises:
            ConfigError: naming the bad option as its flag (``--samples must be at least 1 (got '0')``).
        """
        spec = self.spec.with_updates(**changes)
        if spec.samples > MAX_SAMPLES:
            raise ConfigError(f"--samples takes at most {MAX_SAMPLES} in a chat (got {spec.samples})")
        self.spec = spec
        return spec

    # -- threads ----------------------------------------------------------------------------------------

    @property
    def graph(self) -> Any:
        """The conversation graph, compiled with the SQLite checkpointer."""
        if self._graph is None:
            self._graph = build_chat_graph(self._run_turn, self.store.saver)
        return self._graph

    def turns(self) -> list[Turn]:
        """The current thread's finished turns."""
        return self.store.turns(self.thread_id)

    def new_thread(self) -> str:
        """Switch to a fresh thread; returns its id."""
        self.thread_id = self.store.new_id()
        self.last, self.last_traj = None, None
        return self.thread_id

    def resume(self, thread_id: str) -> list[Turn]:
        """Switch to an existing thread; returns its turns.

        Raises:
            ConfigError: when no such thread exists.
        """
        tid = check_thread_id(thread_id)
        if not self.store.exists(tid):
            raise ConfigError(f"no chat thread {tid!r} in {self.store.path} (/threads lists them)")
        self.thread_id = tid
        self.last, self.last_traj = None, None
        return self.turns()

    # -- model and memory --------------------------------------------------------------------------------

    def load_model(self, model_spec: str | None = None) -> ModelBackend:
        """Load ``model_spec`` (default: the settings' model) behind a spinner and make it the chat's model.

        Raises:
            ConfigError: for a bad spec; ModelError: when it fails to load.
        """
        from ponder.models.spec import load_model, parse_spec

        model_spec = model_spec or self.settings.model
        parse_spec(model_spec)
        settings = self.settings.model_copy(update={"model": model_spec})
        with self.renderer.console.status(f"Loading model {model_spec} ..."):
            backend = load_model(model_spec, settings)
        self.settings, self.model = settings, backend
        return backend

    def open_memory_store(self) -> MemoryStore:
        """The memory store (opened once, behind a spinner: the embedder takes a while to load)."""
        if self.memory_store is None:
            from ponder.memory.store import open_store

            with self.renderer.console.status("Opening the memory store ..."):
                self.memory_store = open_store(self.settings)
        return self.memory_store

    # -- turns ---------------------------------------------------------------------------------------------

    def ask(self, question: str) -> Turn:
        """Answer ``question`` on the current thread and record the turn.

        A ``KeyboardInterrupt`` (Ctrl-C) abandons the turn: nothing is added to the thread's turns.
        """
        if self.model is None:
            self.load_model()
        self._cancelled.clear()
        config = {"configurable": {"thread_id": self.thread_id}, "recursion_limit": 10}
        try:
            state = self.graph.invoke({"question": question}, config, durability="sync")
        except BaseException:
            self._cancelled.set()
            self.renderer.abort()
            raise
        turn = state["turns"][-1]
        self.last = turn
        self.renderer.answer(turn)
        return turn

    def _run_turn(self, question: str, turns: list[Turn]) -> Turn:
        """Run the turn's strategy on ``question`` with ``turns`` in context (the graph's ``respond`` node)."""
        from openinference.semconv.trace import SpanAttributes

        from ponder.core.spans import chain_span, set_output
        from ponder.graphs.strategies.base import StrategyContext
        from ponder.graphs.strategies.build import run_spec

        assert self.model is not None  # ask() loads it
        task = contextual_task(question, turns)
        spec = self.spec
        # parallel samples and search branches are not streamed, nor the verifier's calls
        streamed = self.renderer.streams and spec.strategy_name == "single"
        ctx = StrategyContext(settings=self.settings, agent=self.agent, task_family="chat",
                              model=StreamingModel(self.model, self.renderer.token) if streamed else self.model,
                              store=self.open_memory_store() if self.memory_mode != "none" else None,
                              on_step=self.renderer.step, on_sample=self._on_sample, on_attempt=self._on_attempt,
                              metadata={"chat_thread": self.thread_id, "chat_question": question})
        with chain_span("chat turn", {SpanAttributes.SESSION_ID: self.thread_id, "ponder.turn": len(turns) + 1},
                        input_value=question) as current:
            outcome = run_spec(task, spec, ctx)
            set_output(current, outcome.answer)
        chosen = outcome.trajectory or Trajectory(task=task, agent=self.agent, model=self.model.spec,
                                                  status=outcome.status)
        self.last_traj = chosen
        return turn_of(question, outcome, chosen)

    def _on_sample(self, record: SampleRecord) -> None:
        if not self._cancelled.is_set() and not self.renderer.quiet:
            traj = record.trajectory
            self.renderer.info(f"sample {record.index + 1}: {traj.final_answer} ({traj.status}, "
                               f"{len(traj.steps)} steps)")

    def _on_attempt(self, trial: int, outcome: Outcome) -> None:
        if not self._cancelled.is_set() and not self.renderer.quiet and self.spec.trials > 1:
            self.renderer.info(f"trial {trial}: {outcome.answer} ({outcome.status})")


def turn_of(question: str, outcome: Outcome, chosen: Trajectory) -> Turn:
    """The stored turn of a strategy's outcome (a vote adds its samples, agreement and record id; trials their count).

    For trials of a vote, the vote is the last trial's.
    """
    from ponder.graphs.self_consistency import SelfConsistencyResult

    trials = {"trials": len(outcome.attempts)} if outcome.kind == "trials" else {}
    last = outcome.attempts[-1] if trials and outcome.attempts else outcome
    vote = next((r for r in last.records if isinstance(r, SelfConsistencyResult)), None)
    if vote is None and last.kind not in ("single", "self_consistency"):  # best_of_n, refine, a search, adaptive
        return strategy_turn(question, last, chosen, **trials)
    if vote is None:
        return make_turn(question, chosen, memory=chosen.metadata.get("memory"), **trials)
    turn = make_turn(question, chosen, samples=vote.samples_run, agreement=round(vote.agreement, 3),
                     self_consistency_id=vote.id, memory=vote.memory or chosen.metadata.get("memory"), **trials)
    turn.update(answer=vote.final_answer, status="solved" if vote.final_answer is not None else "no_answer")
    return turn


def strategy_turn(question: str, outcome: Outcome, chosen: Trajectory, **extra: Any) -> Turn:
    """The stored turn of a scored or searched outcome: its answer, strategy, score, trajectories and search tree."""
    score = next((c.score for c in outcome.candidates if c.answer == outcome.answer),
                 outcome.candidates[0].score if outcome.candidates else None)
    facts = {"strategy": outcome.kind, "trajectories": len(outcome.trajectories),
             "tokens": outcome.usage.total_tokens, **({"score": round(score, 3)} if score is not None else {}),
             **{k: outcome.metadata[k] for k in ("search_tree_id",) if k in outcome.metadata}}
    turn = make_turn(question, chosen, memory=chosen.metadata.get("memory"), **facts, **extra)
    turn.update(answer=outcome.answer, status=outcome.status)
    return turn


def describe_memory(session: ChatSession) -> list[str]:
    """Lines for ``/memory``: what recall retrieved for the last turn and what was written."""
    turn = session.last
    if session.memory_mode == "none":
        head = ["memory is off (/memory on, or /memory reflexion|expel|both, turns it on)"]
    else:
        head = [f"memory: {session.memory_mode}, namespace {session.settings.memory_namespace}"]
    if turn is None:
        return [*head, "no turn yet in this session"]
    log_ = turn.get("memory") or {}
    if not log_:
        return [*head, "the last turn ran without memory"]
    retrieved = log_.get("retrieved") or []
    lines = [*head, f"last turn retrieved {len(retrieved)} memories"]
    store = session.memory_store
    for item in retrieved:
        text = ""
        if store is not None:
            record = store.get(item["id"])
            text = " ".join(record.text.split())[:200] if record is not None else "(deleted)"
        score = f" sim {item['similarity']:.2f}" if "similarity" in item else ""
        lines.append(f"  {item.get('kind')} {item['id']}{score}: {text}")
    for item in log_.get("written") or []:
        lines.append(f"  wrote {item.get('kind')} {item.get('id')} ({item.get('status')})")
    return lines
