"""``MemoryContext``: what a run needs to read and write memory, injected through ``AgentContext.memory``.

All writes go through the context, so they can be *held* (queued, ``hold_writes=True``) and applied
later with :meth:`MemoryContext.flush` — e.g. only after a self-consistency vote picked a winner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.core.answers import AnswerKind
from ponder.core.types import MemoryKind, MemoryMode
from ponder.memory.schema import Hit, MemoryRecord, MemoryStore, WriteResult

__all__ = ["MemoryContext", "MemoryMode", "PendingWrite"]


@dataclass
class PendingWrite:
    """One queued write: ``op`` is ``add`` / ``update`` (with a record) or ``delete`` (with an id)."""

    op: Literal["add", "update", "delete"]
    record: MemoryRecord | None = None
    record_id: str = ""


@dataclass
class MemoryContext:
    """Memory settings and the store for one run (or one trials loop).

    Attributes:
        store: The memory store (Chroma in production, see ``memory/store.py``).
        mode: ``reflexion`` (lessons from failures), ``expel`` (insights + successful trajectories) or ``both``.
        namespace: Keeps experiments apart; every read and write stays inside it.
        k: Memories retrieved per kind (reflections, experiences).
        task_family: Environment or dataset name stored with each record (e.g. ``gsm8k``).
        label: The gold answer when known: a wrong final answer then counts as a failure.
        answer_kind: How ``label`` is compared (see :func:`ponder.core.answers.is_correct`).
        run_id: The run the written memories come from (``run_agent`` fills in the trajectory id).
        hold_writes: Queue writes instead of applying them (their results say ``reason="held"``);
            :meth:`flush` applies them in order, :meth:`discard` drops them.
        max_insights: Most insights (highest score first) put into the system prompt.
        pending: The queued writes (shared by :meth:`for_run` copies).
    """

    store: MemoryStore
    mode: MemoryMode = "both"
    namespace: str = "default"
    k: int = 3
    task_family: str = ""
    label: str | None = None
    answer_kind: AnswerKind = "auto"
    run_id: str = ""
    hold_writes: bool = False
    max_insights: int = 10
    pending: list[PendingWrite] = field(default_factory=list)

    @property
    def reflexion(self) -> bool:
        """Whether reflections are written and retrieved."""
        return self.mode in ("reflexion", "both")

    @property
    def expel(self) -> bool:
        """Whether experiences and insights are written and retrieved."""
        return self.mode in ("expel", "both")

    def for_run(self, run_id: str) -> MemoryContext:
        """A copy writing with ``run_id``; it shares the store and the queue of held writes."""
        return dataclasses.replace(self, run_id=run_id)

    def held(self) -> MemoryContext:
        """A copy that queues its writes in a queue of its own (e.g. one self-consistency sample's)."""
        return dataclasses.replace(self, hold_writes=True, pending=[], run_id="")

    def search(self, kind: MemoryKind, query: str, k: int) -> list[Hit]:
        """The ``k`` records of ``kind`` most similar to ``query`` in the namespace, held ones included.

        Held additions of the same task come first (similarity 1): a run holding its writes (a sample
        running several trials) still learns from its own earlier attempts.
        """
        own = [Hit(record=w.record, similarity=1.0) for w in self.pending
               if w.op == "add" and w.record is not None and w.record.kind == kind and w.record.task == query]
        stored = self.store.search(kind, query, k=k, namespace=self.namespace) if k > len(own) else []
        return [*reversed(own), *stored][:k]

    def stamp(self, record: MemoryRecord, task: str) -> MemoryRecord:
        """Fill in the namespace, task family, task and run id of a new record."""
        return record.model_copy(update={"namespace": self.namespace, "task_family": self.task_family,
                                         "task": task, "run_id": self.run_id})

    def add(self, record: MemoryRecord) -> WriteResult:
        """Add ``record`` now, or queue it when holding writes (the result then says ``reason="held"``)."""
        if self.hold_writes:
            self.pending.append(PendingWrite("add", record=record))
            return WriteResult(id=record.id, status="added", reason="held")
        return self.store.add(record)

    def update(self, record: MemoryRecord) -> WriteResult:
        """Replace ``record`` (same id) now, or queue it."""
        if self.hold_writes:
            self.pending.append(PendingWrite("update", record=record))
            return WriteResult(id=record.id, status="updated", reason="held")
        return self.store.update(record)

    def delete(self, record_id: str) -> bool:
        """Delete a record now (``True`` when it existed), or queue the deletion (``True``)."""
        if self.hold_writes:
            self.pending.append(PendingWrite("delete", record_id=record_id))
            return True
        return self.store.delete(record_id)

    def discard(self) -> int:
        """Drop every queued write (e.g. the losing samples of a vote); returns how many went."""
        count = len(self.pending)
        self.pending.clear()
        return count

    def flush(self) -> list[WriteResult]:
        """Apply the queued writes in order and empty the queue.

        Returns:
            One result per write; a deletion reports ``updated`` when the record existed, else ``rejected``.
        """
        results: list[WriteResult] = []
        while self.pending:
            write = self.pending.pop(0)
            if write.op == "add" and write.record is not None:
                results.append(self.store.add(write.record))
            elif write.op == "update" and write.record is not None:
                results.append(self.store.update(write.record))
            elif write.op == "delete":
                existed = self.store.delete(write.record_id)
                results.append(WriteResult(id=write.record_id, status="updated" if existed else "rejected",
                                           reason="deleted" if existed else "no such record"))
        return results

    def describe(self) -> dict[str, Any]:
        """What goes into a trajectory's ``metadata["memory"]`` about this context."""
        return {"mode": self.mode, "namespace": self.namespace, "k": self.k, "task_family": self.task_family,
                "held": self.hold_writes}
