"""What a graph needs from the outside world, injected by the builder (never globals)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ponder.core.records import Step
from ponder.models.base import Completion, GenerationParams, Message, ModelBackend
from ponder.tools.base import ToolBox
from ponder.tools.executor import CodeExecutor

if TYPE_CHECKING:
    from ponder.memory.context import MemoryContext


@dataclass
class AgentDeps:
    """Dependencies of an agent graph.

    Attributes:
        model: The model backend.
        params: Sampling parameters for every model call (stop sequences are added by the graph).
        tools: The ReAct agent's tools.
        executor: Runs PAL programs out of process.
        max_steps: Model calls allowed per run.
        max_parse_failures: Consecutive malformed replies before the run ends with ``parse_error``.
        pal_retries: Extra PAL attempts after a failed program.
        memory: Reflexion / ExpeL memory for this run; ``None`` (the default) turns the graphs'
            ``recall`` and ``remember`` nodes into no-ops.
    """

    model: ModelBackend
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: ToolBox = field(default_factory=ToolBox)
    executor: CodeExecutor | None = None
    max_steps: int = 8
    max_parse_failures: int = 3
    pal_retries: int = 2
    memory: MemoryContext | None = None


def step_params(deps: AgentDeps, stop: list[str]) -> GenerationParams:
    """The parameters of a graph's model calls: one completion, the graph's stop sequences added."""
    return deps.params.model_copy(update={"n": 1, "stop": [*deps.params.stop, *stop]})


def call_model(deps: AgentDeps, messages: list[Message], params: GenerationParams) -> tuple[Completion, float]:
    """One model call; returns the completion and its seconds."""
    start = time.perf_counter()
    completion = deps.model.generate(messages, params)[0]
    return completion, time.perf_counter() - start


def model_step(index: int, kind: str, completion: Completion, seconds: float, **fields: object) -> Step:
    """A :class:`Step` carrying a model call's text, token counts and latency."""
    return Step(
        index=index,
        kind=kind,  # type: ignore[arg-type]
        raw=completion.text,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        logprob=completion.logprob,
        model_seconds=seconds,
        **fields,  # type: ignore[arg-type]
    )
