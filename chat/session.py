"""One chat: settings, model, agent, the current thread, and how a turn runs."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.agents.runner import AGENTS, run_agent
from ponder.chat.graph import Turn, build_chat_graph, contextual_task, make_turn
from ponder.chat.render import ChatRenderer
from ponder.chat.streaming import StreamingModel
from ponder.chat.threads import ThreadStore, check_thread_id
from ponder.core.errors import ConfigError
from ponder.core.records import Trajectory
from ponder.core.settings import Settings
from ponder.core.types import MemoryMode, choices

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext
    from ponder.memory.schema import MemoryStore

log = logging.getLogger("ponder.chat")


@dataclass
class ChatSession:
    """The state of one ``ponder chat`` process.

    Attributes:
        settings: The settings (``model`` follows ``/model``).
        store: The thread database.
        renderer: Terminal output.
        agent: ``react`` or ``pal`` (``/agent``).
        samples: Samples per turn (``/samples``): above 1, a turn is a self-consistency vote.
        memory_mode: ``none``, ``reflexion``, ``expel`` or ``both`` (``/memory off|on|MODE``).
        thread_id: The current thread.
        model: The loaded backend (see :meth:`load_model`).
        last: The last finished turn of this process, and its trajectory (``/memory``).
        memory_store: The memory store, opened at first use (tests inject one).
    """

    settings: Settings
    store: ThreadStore
    renderer: ChatRenderer
    agent: str = "react"
    samples: int = 1
    memory_mode: str = "none"
    thread_id: str = ""
    model: Any = None
    last: Turn | None = None
    last_traj: Trajectory | None = None
    memory_store: MemoryStore | None = None
    _graph: Any = field(default=None, repr=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def open(cls, settings: Settings, renderer: ChatRenderer, *, db_path: Path | str,
             thread_id: str | None = None, samples: int = 1) -> ChatSession:
        """Open the thread database and start a new thread, or resume ``thread_id``.

        Raises:
            ConfigError: for an unknown or malformed ``thread_id``.
        """
        store = ThreadStore(db_path)
        session = cls(settings=settings, store=store, renderer=renderer, agent=settings.agent, samples=samples,
                      memory_mode=settings.memory)
        if thread_id is not None:
            session.resume(thread_id)
        else:
            session.thread_id = store.new_id()
        return session

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

    def load_model(self, spec: str | None = None) -> Any:
        """Load ``spec`` (default: the settings' model) behind a spinner and make it the chat's model.

        Raises:
            ConfigError: for a bad spec; ModelError: when it fails to load.
        """
        from ponder.models.spec import load_model, parse_spec

        spec = spec or self.settings.model
        parse_spec(spec)
        settings = self.settings.model_copy(update={"model": spec})
        with self.renderer.console.status(f"Loading model {spec} ..."):
            backend = load_model(spec, settings)
        self.settings, self.model = settings, backend
        return backend

    def set_agent(self, agent: str) -> None:
        """Use ``agent`` for the next turns.

        Raises:
            ConfigError: for an unknown agent.
        """
        if agent not in AGENTS:
            raise ConfigError(f"unknown agent {agent!r}; choose one of: {', '.join(AGENTS)}")
        self.agent = agent

    def set_memory(self, mode: str) -> None:
        """Use memory ``mode`` for the next turns.

        Raises:
            ConfigError: for an unknown mode.
        """
        if mode not in choices(MemoryMode):
            raise ConfigError(f"unknown memory mode {mode!r}; choose one of: {', '.join(choices(MemoryMode))}")
        self.memory_mode = mode

    def open_memory_store(self) -> MemoryStore:
        """The memory store (opened once, behind a spinner: the embedder takes a while to load)."""
        if self.memory_store is None:
            from ponder.memory.store import open_store

            with self.renderer.console.status("Opening the memory store ..."):
                self.memory_store = open_store(self.settings)
        return self.memory_store

    def memory_context(self, mode: str | None = None) -> MemoryContext | None:
        """A memory context for one turn (``None`` when memory is off)."""
        from ponder.graphs.strategies.trials import open_memory

        mode = mode or self.memory_mode
        if mode == "none":
            return None
        return open_memory(self.settings, mode, store=self.open_memory_store(), task_family="chat")

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
        """Run the agent on ``question`` with ``turns`` in context (called by the graph's ``respond`` node)."""
        task = contextual_task(question, turns)
        memory = self.memory_context()
        meta = {"chat_thread": self.thread_id, "chat_question": question}
        if self.samples > 1:
            return self._run_voted_turn(question, task, memory, meta)
        model = StreamingModel(self.model, self.renderer.token) if self.renderer.streams else self.model
        traj = run_agent(task, agent=self.agent, settings=self.settings, model=model, on_step=self.renderer.step,
                         memory=memory, metadata=meta)
        self.last_traj = traj
        return make_turn(question, traj, memory=traj.metadata.get("memory"))

    def _run_voted_turn(self, question: str, task: str, memory: MemoryContext | None,
                        meta: dict[str, object]) -> Turn:
        """A self-consistency turn: ``samples`` trajectories and a vote (samples run in parallel, unstreamed)."""
        from ponder.graphs.self_consistency import SampleRecord, SCConfig, run_self_consistency

        def on_sample(record: SampleRecord) -> None:
            if not self._cancelled.is_set() and not self.renderer.quiet:
                traj = record.trajectory
                self.renderer.info(f"sample {record.index + 1}: {traj.final_answer} ({traj.status}, "
                                   f"{len(traj.steps)} steps)")

        result = run_self_consistency(task, config=SCConfig(samples=self.samples), agent=self.agent,
                                      settings=self.settings, model=self.model, memory=memory,
                                      on_sample=on_sample, metadata=meta)
        chosen = result.chosen() or Trajectory(task=task, agent=self.agent, model=result.model)
        self.last_traj = chosen
        turn = make_turn(question, chosen, samples=result.samples_run, agreement=round(result.agreement, 3),
                         self_consistency_id=result.id, memory=result.memory or chosen.metadata.get("memory"))
        turn.update(answer=result.final_answer, status="solved" if result.final_answer is not None else "no_answer")
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
