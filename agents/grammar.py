"""Grammars of the agents' steps, and the one place that decides whether a run's steps are constrained.

The grammars are GBNF files in ``prompts/`` (``react_step``, ``tool_inputs``, ``pal_program``, ``env_step``) with
``${placeholders}`` this module fills: the run's tool names and the input rule of each tool, the calculator's
functions, the environment's admissible actions. A backend whose ``capabilities.grammar`` is true
(llama.cpp's grammar sampler, a server with grammar / structured outputs) then only produces replies the agent's
parser reads:

* ReAct: ``Thought: <one line>`` then ``Action: <a tool>`` + ``Action Input: <input for that tool>`` or
  ``Final Answer: <one line>``, then the reply ends.
* PAL: one fenced Python block that starts with ``def solution():``.
* Env agent: ``think: <one line>`` or one action (one of the admissible actions when the environment lists them).

:func:`wants_grammar` is the only decision whether a run uses them (``constrained_steps``: ``auto`` | ``on`` |
``off``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template

from ponder.core.prompts import PROMPT_DIR
from ponder.core.types import ConstrainMode
from ponder.models.base import ModelBackend
from ponder.tools.base import ToolBox

log = logging.getLogger(__name__)

#: Input rules (in ``prompts/tool_inputs.gbnf``) of the tools whose input has a syntax of its own.
TOOL_INPUT_RULES = {"calculator": "calc-input", "python": "python-input"}
#: The rule of any other one-field tool, and of tools with several fields (a JSON object).
LINE_INPUT, JSON_INPUT = "line-input", "json-input"

_warned: set[str] = set()


@dataclass(frozen=True)
class StepGrammar:
    """A grammar that constrains an agent's steps.

    Attributes:
        name: What it constrains (``react``, ``pal`` or ``env``): recorded as the trajectory's
            ``metadata["grammar"]``.
        text: The GBNF text (root rule ``root``).
    """

    name: str
    text: str


#: The agents ``auto`` constrains (measured on the embedded model, issue 17): ReAct's free steps were mostly
#: parse errors and constrained ones are all well-formed; PAL programs and env-agent turns got worse under their
#: grammars (PAL programs cut at the token limit, env turns that only ``think``), so ``auto`` leaves them free and
#: ``on`` still constrains them.
AUTO_AGENTS = frozenset({"react"})


def wants_grammar(mode: ConstrainMode, model: ModelBackend, agent: str = "react") -> bool:
    """Whether a run's steps are grammar-constrained: the one place this is decided.

    ``off``: never. ``auto``: when the backend honours grammars (``model.capabilities.grammar``) and ``agent`` is
    one of :data:`AUTO_AGENTS`. ``on``: whenever the backend honours grammars; a backend without grammar support
    is warned about (once per backend spec) and runs free.
    """
    if mode == "off":
        return False
    supported = model.capabilities.grammar
    if mode == "on" and not supported and model.spec not in _warned:
        _warned.add(model.spec)
        log.warning("constrained steps are on, but %s (%s) does not support grammars: its steps run unconstrained",
                    model.spec, model.backend_name)
    return supported and (mode == "on" or agent in AUTO_AGENTS)


@functools.cache
def _load(name: str) -> Template:
    return Template((PROMPT_DIR / f"{name}.gbnf").read_text(encoding="utf-8"))


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (quotes, backslashes and control characters escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


#: The calculator input's bounds: numbers or constants in all, and open brackets at once.
CALC_MAX_TERMS, CALC_MAX_DEPTH = 16, 3


@functools.cache
def _tool_inputs() -> str:
    from ponder.tools.calculator_math import FUNCTIONS

    # longest first, so that "log10" is tried before "log" (either order is correct; this keeps the tries short)
    names = sorted(FUNCTIONS, key=lambda name: (-len(name), name))
    return _load("tool_inputs").substitute(functions=" | ".join(gbnf_literal(n) for n in names),
                                           calc_rules=calc_rules(CALC_MAX_TERMS, CALC_MAX_DEPTH),
                                           max_terms=CALC_MAX_TERMS, max_depth=CALC_MAX_DEPTH)


def calc_rules(max_terms: int, max_depth: int) -> str:
    """GBNF rules ``calc-input`` (and its states) for an expression with a bounded size.

    A bracketed grammar has no length bound (every level multiplies the terms), so the expression is written as a
    finite automaton: ``calc-s-<open>-<n>`` expects an operand and ``calc-a-<open>-<n>`` follows one, where
    ``<open>`` is ``o`` and the kinds of the open brackets (``p`` plain, ``f`` a function call: only there may a
    comma follow) and ``<n>`` the operands so far.
    """
    def state(kind: str, st: str, n: int) -> str:
        return f"calc-{kind}-o{st}-{n}"

    stacks = [""]
    for depth in range(max_depth):
        stacks += [st + kind for st in stacks if len(st) == depth for kind in "pf"]
    # a trailing "=" (which the calculator drops) lets a model that wants to write "= <result>" end there
    rules = [f'calc-input ::= {state("s", "", 0)} ( " "? "=" )?']
    for st in stacks:
        for n in range(max_terms):
            operand = [f"calc-atom {state('a', st, n + 1)}"]
            if len(st) < max_depth:
                operand += [f'"(" {state("s", st + "p", n)}', f'calc-func "(" {state("s", st + "f", n)}']
            rules.append(f"{state('s', st, n)} ::= [-+]? ( {' | '.join(operand)} )")
        for n in range(1, max_terms + 1):
            after = [f'" "? calc-op " "? {state("s", st, n)}'] if n < max_terms else []
            if st:
                after.append(f'")" {state("a", st[:-1], n)}')
            if st.endswith("f") and n < max_terms:
                after.append(f'"," " "? {state("s", st, n)}')
            body = f"( {' | '.join(after)} )" if after else '""'
            rules.append(f"{state('a', st, n)} ::= {body}{'?' if after and not st else ''}")
    return "\n".join(rules)


@functools.lru_cache(maxsize=64)
def react_grammar(tool_names: Sequence[str], json_tools: Sequence[str] = (),
                  typed_inputs: Sequence[tuple[str, str, str]] = ()) -> str:
    """The GBNF of one ReAct step with these tools.

    Args:
        tool_names: The run's tools, as the model writes them on the ``Action:`` line.
        json_tools: Tools that take several arguments (their input is a JSON object on one line).
        typed_inputs: ``(tool, start rule, rules)`` of json tools whose input follows their argument schema (see
            :func:`typed_input_rules`); the other json tools take any one-line object.

    The ``calculator`` gets an arithmetic expression in its syntax, ``python`` a line or a fenced block of code,
    any other tool one non-empty line. Pass tuples (the result is cached).
    """
    typed = {tool: start for tool, start, _ in typed_inputs}
    actions = []
    for name in tool_names:
        rule = typed.get(name) or (JSON_INPUT if name in json_tools else TOOL_INPUT_RULES.get(name, LINE_INPUT))
        actions.append(f"{gbnf_literal(f'Action: {name}' + chr(10) + 'Action Input: ')} {rule} | ")
    extra = "".join("\n" + rules for _, _, rules in typed_inputs)
    return _load("react_step").substitute(actions="".join(actions)) + "\n" + _tool_inputs() + extra


@functools.lru_cache(maxsize=256)
def typed_input_rules(index: int, schema_json: str) -> tuple[str, str] | None:
    """GBNF rules holding a tool's input to its argument schema: ``(start rule, rules)``, or ``None``.

    ``None`` when the schema cannot be expressed (or llama-cpp-python, whose converter makes the rules, is missing):
    the tool then takes any one-line JSON object. ``index`` keeps the rule names of the run's tools apart.
    """
    from ponder.models.json_grammar import embedded_schema_rules

    return embedded_schema_rules(json.loads(schema_json), f"tool{index}-args")


def react_grammar_for(tools: ToolBox) -> StepGrammar:
    """The ReAct step grammar of a run's :class:`~ponder.tools.base.ToolBox`.

    A tool with several arguments (an MCP tool, a multi-argument function) writes a JSON object that follows its
    argument schema (names, types, required keys), so a local model's calls are well-formed as a served model's
    native calls are.
    """
    from ponder.tools.schema import tool_parameters

    names = tuple(tools.names())
    several = tuple(n for n in names if len(tools.tools[n].args_schema.model_fields) != 1)
    typed = []
    for index, name in enumerate(several):
        rules = typed_input_rules(index, json.dumps(tool_parameters(tools.tools[name]), sort_keys=True))
        if rules is not None:
            typed.append((name, *rules))
    return StepGrammar("react", react_grammar(names, several, tuple(typed)))


@functools.cache
def pal_grammar() -> str:
    """The GBNF of a PAL reply: one fenced Python block defining ``solution()``."""
    return _load("pal_program").substitute()


def env_grammar(admissible: Sequence[str] | None = None, max_action_chars: int = 200) -> str:
    """The GBNF of one env-agent turn: a thought, or an action.

    Args:
        admissible: The actions the environment accepts now; when given (non-empty), the action is one of them.
        max_action_chars: The longest free action (without ``admissible``); the parser refuses longer lines.
    """
    if admissible:
        action = " | ".join(gbnf_literal(a) for a in dict.fromkeys(admissible) if a.strip())
    else:
        action = "free-action"
    return _load("env_step").substitute(action=action or "free-action", free_chars=max(max_action_chars - 1, 1))
