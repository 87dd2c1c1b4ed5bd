"""What an agent graph needs from the outside world: LangGraph's runtime context of one run.

The graphs are compiled once per process (:mod:`ponder.agents.kernel`); each run passes its own context
(``graph.invoke(state, context=AgentContext(...))``) and the nodes read it as ``runtime.context``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ponder.agents.grammar import StepGrammar
from ponder.core.environment import Env
from ponder.core.records import Step
from ponder.core.types import StepKind
from ponder.memory.context import MemoryContext
from ponder.models.base import Completion, GenerationParams, Message, ModelBackend
from ponder.tools.base import ToolBox
from ponder.tools.executor import CodeExecutor
from ponder.tools.schema import tool_definitions

#: How ReAct calls tools: the server's native function calling, or the Thought / Action / Action Input text.
ToolCalling = Literal["native", "text"]


@dataclass(frozen=True)
class Limits:
    """How long a run may go on.

    Attributes:
        max_steps: Model calls allowed per run.
        max_parse_failures: Malformed replies in a row before the run ends with ``parse_error``.
        pal_retries: Extra PAL attempts after a failed program.
        max_action_chars: Longer env-agent action lines are malformed (prose, not a command).
    """

    max_steps: int = 8
    max_parse_failures: int = 3
    pal_retries: int = 2
    max_action_chars: int = 200


@dataclass
class AgentContext:
    """The runtime context of a ReAct or PAL run.

    Attributes:
        model: The model backend.
        params: Sampling parameters for every model call (the graph adds its stop sequences).
        tools: The ReAct agent's tools.
        executor: Runs PAL programs out of process.
        memory: Reflexion / ExpeL memory for this run; ``None`` (the default) makes ``recall`` and ``remember``
            no-ops.
        limits: Step, parse-failure and retry caps.
        grammar: The grammar every step's reply must follow (``None``: free text); set only for a backend that
            honours grammars (:func:`~ponder.agents.grammar.wants_grammar` decides).
        tool_protocol: ``native``: ReAct sends the tools' JSON-Schema definitions and reads the reply's tool calls
            (a backend with ``capabilities.tool_calls``; no grammar then); ``text`` (default): the text protocol.
    """

    model: ModelBackend
    params: GenerationParams = field(default_factory=GenerationParams)
    tools: ToolBox = field(default_factory=ToolBox)
    executor: CodeExecutor | None = None
    memory: MemoryContext | None = None
    limits: Limits = field(default_factory=Limits)
    grammar: StepGrammar | None = None
    tool_protocol: ToolCalling = "text"
    _native_params: GenerationParams | None = field(default=None, init=False, repr=False)
    _step_params: dict[tuple[tuple[str, ...], str | None], GenerationParams] = field(
        default_factory=dict, init=False, repr=False)

    def step_params(self, stop: tuple[str, ...], grammar: str | None = None) -> GenerationParams:
        """The parameters of the graph's model calls: one completion, ``stop`` added (computed once per run).

        With a grammar (the run's, or ``grammar`` for this step only: the env agent's admissible actions) the reply
        ends where the grammar does, so the graph's stop sequences are left out: they could only cut a reply the
        grammar allows (an answer line that mentions "Observation:") into one the parser refuses.
        """
        if grammar is not None:
            return self.params.model_copy(update={"n": 1, "grammar": grammar})
        text = self.grammar.text if self.grammar is not None else None
        key = ((), text) if text is not None else (stop, None)
        params = self._step_params.get(key)
        if params is None:
            params = self.params.model_copy(update={"n": 1, "stop": [*self.params.stop, *key[0]], "grammar": text})
            self._step_params[key] = params
        return params

    def native_params(self) -> GenerationParams:
        """The parameters of a native tool-calling step, computed once per run.

        One completion, the tools' definitions with ``tool_choice="auto"``, no grammar and no stop sequences added
        (the server ends the turn).
        """
        if self._native_params is None:
            definitions = tool_definitions(list(self.tools.tools.values())) or None
            self._native_params = self.params.model_copy(update={
                "n": 1, "grammar": None, "tools": definitions, "tool_choice": "auto" if definitions else None})
        return self._native_params


@dataclass
class EnvAgentContext(AgentContext):
    """The runtime context of an episode.

    Attributes:
        env: The environment, already reset by the caller (:func:`~ponder.agents.env.run_env_agent` does it).
        show_actions: Show the admissible actions (when known) after the latest observation.
        instructions: The action format put into the system prompt (``""``: the generic default).
        examples: Few-shot turns put after the system prompt.
        think: Allow ``think:`` turns; ``False`` with a grammar and admissible actions makes every turn one of the
            admissible actions (a tree search's moves, where a small model's thoughts loop).
    """

    env: Env | None = None
    show_actions: bool = True
    instructions: str = ""
    examples: list[Message] = field(default_factory=list)
    think: bool = True


def model_step(index: int, kind: StepKind, completion: Completion, seconds: float, **fields: object) -> Step:
    """A :class:`Step` carrying a model call's text, token counts and latency."""
    return Step(
        index=index,
        kind=kind,
        raw=completion.text,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        logprob=completion.logprob,
        model_seconds=seconds,
        **fields,  # type: ignore[arg-type]
    )
