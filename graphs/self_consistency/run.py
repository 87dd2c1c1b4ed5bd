"""``run_self_consistency``: N independent agent trajectories, a vote, early stopping, one record.

The function form of ``SelfConsistency(Single(agent), config)`` (see
:mod:`ponder.graphs.strategies.self_consistency`, where the samples, their isolation, the held memory writes
and the batched fast path are described), kept for callers that want the whole
:class:`~ponder.graphs.self_consistency.records.SelfConsistencyResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.core.settings import Settings, load_settings
from ponder.core.types import AgentName
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.records import SC_FILE, SampleRecord, SelfConsistencyResult
from ponder.models.base import ModelBackend

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext

__all__ = ["SC_FILE", "run_self_consistency"]


def run_self_consistency(
    task: str,
    *,
    config: SCConfig | None = None,
    agent: AgentName | None = None,
    settings: Settings | None = None,
    model: ModelBackend | None = None,
    memory: MemoryContext | None = None,
    on_sample: Callable[[SampleRecord], None] | None = None,
    out_dir: str | Path | None = None,
    write: bool = True,
    metadata: dict[str, object] | None = None,
) -> SelfConsistencyResult:
    """Run ``config.samples`` independent trajectories of ``agent`` on ``task`` and vote.

    Args:
        task: The question.
        config: Samples, vote, stop rule, budget (default: 8 samples, majority, no early stop).
        agent: ``react`` or ``pal`` (default: ``settings.agent``).
        settings: Settings (default: :func:`~ponder.core.settings.load_settings`).
        model: A backend (default: loaded from ``settings.model``).
        memory: Memory for every sample (writes held; the chosen sample's are applied after the vote).
        on_sample: Called with each finished sample (from the branch's thread).
        out_dir: Where ``self_consistency.jsonl`` is appended (default: ``settings.out_dir``).
        write: Set ``False`` to skip writing the record.
        metadata: Extra fields stored in the record.

    Raises:
        ConfigError: for an unknown answer kind.
    """
    from ponder.graphs.strategies.base import StrategyContext
    from ponder.graphs.strategies.self_consistency import SelfConsistency
    from ponder.graphs.strategies.single import Single
    from ponder.models.spec import load_model

    settings = settings or load_settings()
    ctx = StrategyContext(settings=settings, model=model or load_model(settings.model, settings),
                          agent=agent or settings.agent, memory=memory, on_sample=on_sample,  # type: ignore[arg-type]
                          out_dir=Path(out_dir) if out_dir else None, write=write, metadata=dict(metadata or {}))
    return SelfConsistency(Single(), config or SCConfig()).vote(task, ctx)
