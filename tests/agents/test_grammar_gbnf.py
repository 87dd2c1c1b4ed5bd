"""The step grammars in llama.cpp: they compile, accept the replies they should and refuse the others, and every
reply they allow parses (strings drawn at random from each grammar with the embedded model's vocabulary; no
weights are loaded: llama.cpp reads the vocabulary only)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pytest

from ponder.agents.env import match_admissible, parse_turn
from ponder.agents.grammar import env_grammar, pal_grammar, react_grammar, react_grammar_for
from ponder.agents.parsing import extract_code, parse_react
from ponder.models.gguf_cache import find_embedded_gguf
from ponder.models.llamacpp_grammar import GrammarSampler
from ponder.tools.base import FunctionTool, ToolBox, ToolInputError, parse_tool_input
from ponder.tools.calculator import calculate

TOOLS = ("calculator", "python", "search")
_CLOSING = {b")", b"\n", b"`", b"```", b"\n```"}
_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
ADMISSIBLE = ["go north", "take key from table", 'say "hi" \\ bye', "open box"]


class Vocab:
    """The embedded model's vocabulary, loaded alone: tokenize text and walk a grammar over its tokens."""

    def __init__(self, lc: Any, model: Any) -> None:
        self.lc, self.model = lc, model
        self.vocab = lc.llama_model_get_vocab(model)
        self.n = int(lc.llama_vocab_n_tokens(self.vocab))
        self.eos = int(lc.llama_vocab_eos(self.vocab))
        self.eos_ids = np.array([self.eos], dtype=np.intc)

    def tokens(self, text: str) -> list[int]:
        data = text.encode()
        buf = (self.lc.llama_token * (len(data) + 8))()
        n = self.lc.llama_tokenize(self.vocab, data, len(data), buf, len(buf), False, False)
        assert n >= 0
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether ``text`` is a whole reply of ``grammar`` (each token allowed, then the end allowed)."""
        sampler = GrammarSampler(self.lc, self.vocab, grammar)
        try:
            for token in self.tokens(text):
                if not sampler.allows(token):
                    return False
                sampler.accept(token)
            return sampler.allows(self.eos)
        finally:
            sampler.close()

    def subset(self, rng: np.random.Generator, extra: int = 300) -> np.ndarray:
        """Every token of at most two bytes (so any reply can be spelled) and ``extra`` random longer ones."""
        short = [t for t in range(self.n) if 0 < len(self.piece(t)) <= 2]
        return np.unique(np.concatenate([short, rng.choice(self.n, extra, replace=False)])).astype(np.intc)

    def allowed(self, sampler: Any, ids: np.ndarray) -> np.ndarray:
        """The tokens among ``ids`` that the llama.cpp grammar sampler ``sampler`` allows next."""
        data = np.zeros(len(ids), dtype=_TOKEN_DATA)
        data["id"] = ids
        array = self.lc.llama_token_data_array(data=data.ctypes.data_as(ctypes.POINTER(self.lc.llama_token_data)),
                                               size=len(data), selected=-1, sorted=False)
        self.lc.llama_sampler_apply(sampler, ctypes.byref(array))
        return ids[np.isfinite(data["logit"])]

    def draw(self, grammar: str, rng: np.random.Generator, ids: np.ndarray, max_tokens: int = 300) -> str | None:
        """A random reply of ``grammar`` over the tokens ``ids``: each next token uniform over what it allows, but
        the end (when allowed) with probability 1/4 and a token that closes something (a line, a bracket, a fence)
        with probability 2/5, so that replies end; ``None`` when none ended within ``max_tokens``."""
        sampler = self.lc.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        assert sampler
        out = b""
        try:
            for _ in range(max_tokens):
                allowed = self.allowed(sampler, ids)
                if len(self.allowed(sampler, self.eos_ids)) and (not len(allowed) or rng.random() < 0.25):
                    return out.decode(errors="replace")  # as the backends decode: a byte token may split a character
                assert len(allowed), out
                closing = [t for t in allowed if self.piece(int(t)) in _CLOSING]
                token = int(rng.choice(closing) if closing and rng.random() < 0.4 else rng.choice(allowed))
                self.lc.llama_sampler_accept(sampler, token)
                out += self.piece(token)
            return None
        finally:
            self.lc.llama_sampler_free(sampler)


@pytest.fixture(scope="module")
def vocab() -> Iterator[Vocab]:
    import llama_cpp as lc
    import llama_cpp.llama  # noqa: F401 - installs llama-cpp-python's log callback (keeps the load quiet)

    params = lc.llama_model_default_params()
    params.vocab_only = True
    model = lc.llama_model_load_from_file(str(find_embedded_gguf()).encode(), params)
    assert model
    yield Vocab(lc, model)
    lc.llama_model_free(model)


@pytest.fixture(scope="module")
def ids(vocab: Vocab) -> np.ndarray:
    """The tokens random replies are drawn from."""
    return vocab.subset(np.random.default_rng(16))


REACT_GOOD = [
    "Thought: 12 times 7 is 84, plus 5\nAction: calculator\nAction Input: 12 * 7 + 5",
    "Thought: 12 times 7 is 84, plus 5\nAction: calculator\nAction Input: 12 * 7 + 5 =",  # ends where "= 89" would
    "Thought: I now know the final answer\nFinal Answer: 89",
    "Thought: powers and roots\nAction: calculator\nAction Input: sqrt(16) + 2^10 - max(3, 4) // 2 % 5 * -pi",
    "Thought: nested\nAction: calculator\nAction Input: ((1.5 + 2) * (3 - 0.25)) / log10(100)",
    "Thought: deep\nAction: calculator\nAction Input: (((1 + 2) * 3) - 4) + " + " + ".join(["1"] * 12),
    "Thought: calls\nAction: calculator\nAction Input: max(1, min(2, 3), round(2.5)) * comb(5,2)",
    "Thought: use python\nAction: python\nAction Input: print(12 * 7 + 5)",
    "Thought: a program\nAction: python\nAction Input: ```python\nx = 12 * 7\n\nprint(x + 5)\n```",
    "Thought: look it up\nAction: search\nAction Input: capital of France",
    "Thought: " + "a" * 200 + "\nFinal Answer: 89",
]
REACT_BAD = [
    "Thought: 12 * 7 + 5",  # no action (what the free model writes)
    "Thought: 12 * 7 + 5\nThought: again",
    "Thought: x\nAction: calculator\nAction Input: 12 times 7",  # not an expression
    "Thought: x\nAction: calculator\nAction Input: 2(3 + 4)",  # implicit multiplication
    "Thought: x\nAction: calculator\nAction Input: 007",  # Python refuses leading zeros
    "Thought: x\nAction: calculator\nAction Input: (1 + 2",
    "Thought: x\nAction: calculator\nAction Input: " + " * ".join(["24"] * 17),  # a repeating model is stopped
    "Thought: x\nAction: calculator\nAction Input: 24 * (24 * 24) * (" + " * ".join(["24"] * 14) + ")",
    "Thought: x\nAction: calculator\nAction Input: (1, 2)",  # commas only between a function's arguments
    "Thought: x\nAction: calculator\nAction Input: 12 * 7 = 84",
    "Thought: x\nAction: calculator\nAction Input: ((((1))))",  # brackets four deep
    "Thought: x\nAction: browser\nAction Input: y",  # not one of the run's tools
    "Thought: the final answer: 89\nFinal Answer: 89",  # a keyword inside the thought
    "Thought: x\nFinal Answer: ",
    "Thought: x\nFinal Answer: 89\nObservation: 89",  # the model writing its own observation
    "Thought: x\nAction: search\nAction Input: a\nb",
    "Thought: " + "a" * 201 + "\nFinal Answer: 89",  # a rambling thought
    "I think the answer is 89",
]
PAL_GOOD = [
    "```python\ndef solution():\n    a = 12 * 7\n    return a + 5\n```",
    "```python\ndef solution():\n    import math\n\n    return math.sqrt(16)\n```",
]
PAL_BAD = [
    "Here is the code:\n```python\ndef solution():\n    return 1\n```",
    "```python\nimport math\ndef solution():\n    return 1\n```",
    "```python\ndef solution():\nreturn 1\n```",
    "```python\ndef solution():\n    return 1\n```\nThe answer is 1.",
    "```python\ndef solution():\n```",
]
ENV_GOOD = ["think: the key must be in the box", "open box", "take key from table", "go north"]
ENV_BAD = ["", "think: ", "Action: go north", "go north\nlook", "> go north"]


@pytest.mark.parametrize("text", REACT_GOOD)
def test_react_replies_the_grammar_accepts_parse(vocab: Vocab, text: str) -> None:
    assert vocab.accepts(react_grammar(TOOLS, ()), text)
    assert parse_react(text, list(TOOLS)).kind in ("action", "final")


@pytest.mark.parametrize("text", REACT_BAD)
def test_react_grammar_refuses_malformed_steps(vocab: Vocab, text: str) -> None:
    assert not vocab.accepts(react_grammar(TOOLS, ()), text)


def test_a_run_without_tools_can_only_answer(vocab: Vocab) -> None:
    assert vocab.accepts(react_grammar(()), "Thought: easy\nFinal Answer: 4")
    assert not vocab.accepts(react_grammar(()), REACT_GOOD[0])


def test_a_tool_with_several_arguments_takes_a_json_object(vocab: Vocab) -> None:
    grammar = react_grammar(("add",), ("add",))
    assert vocab.accepts(grammar, 'Thought: add\nAction: add\nAction Input: {"a": 1, "b": 2}')
    assert not vocab.accepts(grammar, "Thought: add\nAction: add\nAction Input: 1 2")


def convert(amount: float, unit: Literal["m", "km"], places: int = 2) -> str:
    """Converts a distance.

    Args:
        amount: How far.
        unit: The unit of the result.
        places: Decimal places.
    """
    return f"{amount} {unit}"


def _typed_grammar() -> str:
    return react_grammar_for(ToolBox([FunctionTool(convert), FunctionTool(calculate, name="calculator")])).text


TYPED_GOOD = ['{"amount": 19, "unit": "km"}', '{"amount": -2.5e3, "unit": "m", "places": 0}',
              '{ "amount": 1, "unit": "m"}']
TYPED_BAD = ['{"amount": "far", "unit": "km"}', '{"unit": "km"}', '{"amount": 1, "unit": "miles"}',
             '{"amount": 1, "unit": "m", "extra": 1}', '{"amount": 1, "unit": "m", "places": 1.5}', "{19 + 23}",
             '{"amount": 1,\n"unit": "m"}']


@pytest.mark.parametrize("arguments", TYPED_GOOD)
def test_a_typed_tool_input_follows_its_argument_schema(vocab: Vocab, arguments: str) -> None:
    assert vocab.accepts(_typed_grammar(), f"Thought: convert\nAction: convert\nAction Input: {arguments}")


@pytest.mark.parametrize("arguments", TYPED_BAD)
def test_a_typed_tool_input_refuses_what_the_schema_refuses(vocab: Vocab, arguments: str) -> None:
    assert not vocab.accepts(_typed_grammar(), f"Thought: convert\nAction: convert\nAction Input: {arguments}")


def test_every_drawn_typed_input_is_valid_for_the_tool(vocab: Vocab, ids: np.ndarray) -> None:
    tool, rng, grammar, checked = FunctionTool(convert), np.random.default_rng(19), _typed_grammar(), 0
    for _ in range(60):
        text = vocab.draw(grammar, rng, ids)
        step = parse_react(text, ["convert", "calculator"]) if text is not None else None
        if step is None or step.action != "convert":
            continue
        parse_tool_input(tool, step.action_input or "")  # raises ToolInputError for arguments the tool refuses
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("text", PAL_GOOD)
def test_pal_programs_the_grammar_accepts_are_found(vocab: Vocab, text: str) -> None:
    assert vocab.accepts(pal_grammar(), text)
    code = extract_code(text)
    assert code is not None and code.startswith("def solution():")


@pytest.mark.parametrize("text", PAL_BAD)
def test_pal_grammar_refuses_other_replies(vocab: Vocab, text: str) -> None:
    assert not vocab.accepts(pal_grammar(), text)


@pytest.mark.parametrize("text", ENV_GOOD)
def test_env_turns_the_grammar_accepts_parse(vocab: Vocab, text: str) -> None:
    assert vocab.accepts(env_grammar(None, 200), text)
    assert parse_turn(text).kind in ("think", "action")


@pytest.mark.parametrize("text", ENV_BAD)
def test_env_grammar_refuses_malformed_turns(vocab: Vocab, text: str) -> None:
    assert not vocab.accepts(env_grammar(None, 200), text)


def test_listed_actions_are_the_only_actions(vocab: Vocab) -> None:
    grammar = env_grammar(ADMISSIBLE, 200)
    assert all(vocab.accepts(grammar, action) for action in ADMISSIBLE)
    assert vocab.accepts(grammar, "think: which way?")
    assert not vocab.accepts(grammar, "go south") and not vocab.accepts(grammar, "go north now")


def _calculator_parses(expression: str) -> bool:
    try:
        calculate(expression)
    except ToolInputError as exc:  # math errors and arity are the tool's answer; syntax must never fail
        return not any(w in str(exc) for w in ("could not parse", "not supported", "unknown"))
    return True


def test_every_drawn_react_step_parses(vocab: Vocab, ids: np.ndarray) -> None:
    rng, grammar, kinds, ended = np.random.default_rng(17), react_grammar(TOOLS, ()), set(), 0
    for _ in range(60):
        text = vocab.draw(grammar, rng, ids)
        if text is None:
            continue
        ended += 1
        step = parse_react(text, list(TOOLS))
        assert step.kind in ("action", "final"), (text, step.problem)
        thought, second, *rest = text.split("\n")
        assert step.thought == thought.removeprefix("Thought: ").strip(), text  # the parser reads what was meant
        if step.kind == "final":
            assert second.startswith("Final Answer: ") and step.final_answer == second[14:].strip() and not rest
        else:
            assert second == f"Action: {step.action}" and rest[0].startswith("Action Input: "), text
        kinds.add(step.action or step.kind)
        if step.action == "calculator":
            assert _calculator_parses(step.action_input or ""), text
    assert ended >= 40 and kinds == {"final", *TOOLS}


def test_every_drawn_pal_reply_holds_solution(vocab: Vocab, ids: np.ndarray) -> None:
    rng = np.random.default_rng(18)
    drawn = [t for t in (vocab.draw(pal_grammar(), rng, ids, max_tokens=600) for _ in range(20)) if t is not None]
    assert len(drawn) >= 12
    for text in drawn:
        code = extract_code(text)
        assert code is not None and code.startswith("def solution():\n") and "```" not in code, text


@pytest.mark.parametrize("admissible", [None, ADMISSIBLE])
def test_every_drawn_env_turn_parses(vocab: Vocab, ids: np.ndarray, admissible: list[str] | None) -> None:
    rng, grammar, ended = np.random.default_rng(19), env_grammar(admissible, 200), 0
    for _ in range(40):
        text = vocab.draw(grammar, rng, ids)
        if text is None:
            continue
        ended += 1
        turn = parse_turn(text)
        assert turn.kind in ("think", "action"), (text, turn.problem)
        if turn.kind == "action" and admissible:
            assert match_admissible(turn.text, admissible) in admissible, text
    assert ended >= 30


def test_the_calculator_takes_an_expression_that_ends_with_an_equals_sign(vocab: Vocab) -> None:
    text = "Thought: x\nAction: calculator\nAction Input: 12 * 7 + 5 ="
    assert vocab.accepts(react_grammar(TOOLS, ()), text)
    assert calculate(parse_react(text, list(TOOLS)).action_input or "") == "89"
