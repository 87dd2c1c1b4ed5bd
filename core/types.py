"""The shared names of ponder, each written once: agents, statuses, step kinds, tools, votes, memory modes.

Every option list (settings, the CLI, ``ponder eval``, chat's slash commands, the run spec) takes its choices from
these ``Literal`` types; :func:`choices` gives the tuple of a type's values for help texts and checks.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

#: The agents that answer a task (``env`` plays an environment; ``humaneval`` grades code completions).
AgentName = Literal["react", "pal"]

#: How a run ended.
Status = Literal["solved", "max_steps", "parse_error", "error"]

#: What one step was: a tool call, the final answer, a malformed reply, a PAL program.
StepKind = Literal["action", "final", "parse_error", "program"]

#: The ReAct agent's tools.
ToolName = Literal["calculator", "python", "search", "lookup", "retrieve"]

#: How self-consistency picks its answer.
VoteMethod = Literal["majority", "weighted", "judge"]

#: How a task is attempted (``single`` one run; ``sc`` self-consistency; the rest are test-time search).
StrategyName = Literal["single", "sc", "best_of_n", "beam", "lats", "refine", "adaptive"]

#: Verifiers a search strategy can score with (combined as ``self:0.5,env``).
VerifierName = Literal["env", "execution", "self", "prm", "agreement"]

#: Self-consistency's early-stop rules.
StopRule = Literal["certain", "beta", "esc"]

#: Which memory a run reads and writes (``none``: the clean baseline).
MemoryMode = Literal["none", "reflexion", "expel", "both"]

#: Kinds of stored memories.
MemoryKind = Literal["reflection", "insight", "experience"]

#: Where model-written code runs.
SandboxKind = Literal["local", "e2b"]

#: The local sandbox's isolation.
IsolationMode = Literal["auto", "bwrap", "unshare", "none"]

#: Retrieval of the search tools.
SearchMode = Literal["bm25", "dense", "hybrid"]

#: Whether agent steps are grammar-constrained (``auto``: when the backend supports grammars).
ConstrainMode = Literal["auto", "on", "off"]

#: How ReAct calls tools: ``native`` (the server's function-calling API: JSON-Schema tool definitions in, ``tool_calls``
#: out), ``text`` (Thought / Action / Action Input lines) or ``auto`` (native when the backend supports it).
ToolProtocol = Literal["auto", "native", "text"]

#: MCP transports: ``stdio`` (a child process) or streamable ``http``.
MCPTransport = Literal["stdio", "http"]

#: The GGUF format the llama.cpp backend runs (``auto``: the measured fastest for the embedded model).
GgufFormat = Literal["auto", "original", "q4_0", "q8_0"]


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` type, in order (``choices(VoteMethod) == ("majority", "weighted", "judge")``)."""
    return tuple(get_args(literal))
