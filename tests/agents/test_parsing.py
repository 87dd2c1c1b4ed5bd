import pytest

from ponder.agents.parsing import LITERAL_MAX_CHARS, answer_from_value, extract_code, parse_react

TOOLS = ["calculator", "search"]


@pytest.mark.parametrize(
    ("text", "action", "action_input"),
    [
        ("Thought: add\nAction: calculator\nAction Input: 2+2", "calculator", "2+2"),
        ("Action: Calculator\nAction Input: 2+2", "calculator", "2+2"),
        ("Thought 1: x\nAction 1: calculator\nAction Input 1: 3*4", "calculator", "3*4"),
        ("Action: calculator[3*4]", "calculator", "3*4"),
        ("Action: `calculator`\nAction Input: 5", "calculator", "5"),
        ("Action: search\nAction Input: {\"query\": \"x\"}", "search", '{"query": "x"}'),
        ("Action: calculator\nAction Input: ```\n1+1\n```", "calculator", "1+1"),
        ("Action: calculator\nAction Input: 7*6\nThought: ignored later text", "calculator", "7*6"),
        ("Action: calculator\nAction Input: 1+\n2", "calculator", "1+\n2"),
    ],
)
def test_actions(text, action, action_input):
    step = parse_react(text, TOOLS)
    assert step.kind == "action"
    assert (step.action, step.action_input) == (action, action_input)


def test_thought_is_kept():
    step = parse_react("Thought: I should multiply.\nAction: calculator\nAction Input: 6*7", TOOLS)
    assert step.thought == "I should multiply."


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Thought: done\nFinal Answer: 42", "42"),
        ("Final Answer: 42\nThought: more text after the answer\nAction: calculator", "42"),
        ("final answer: Paris", "Paris"),
        ("Thought: ok\nFinal Answer: two\nlines", "two\nlines"),
    ],
)
def test_final(text, answer):
    step = parse_react(text, TOOLS)
    assert step.kind == "final"
    assert step.final_answer == answer


def test_first_of_action_and_final_wins():
    step = parse_react("Action: calculator\nAction Input: 1+1\nFinal Answer: 2", TOOLS)
    assert step.kind == "action"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("Thought: hmm\nThought: hmm again\nThought: still thinking", "no 'Action:'"),
        ("Action: teleport\nAction Input: x", "unknown tool"),
        ("Action: calculator", "Action Input:' line is missing"),
        ("Action: calculator\nAction Input:   ", "Action Input is empty"),
        ("Action:\nAction Input: 2", "names no tool"),
        ("Final Answer:", "Final Answer is empty"),
        ("I think the answer is 4.", "no 'Action:'"),
    ],
)
def test_malformed(text, problem):
    step = parse_react(text, TOOLS)
    assert step.kind == "error"
    assert problem in (step.problem or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\ndef solution():\n    return 1\n```", "def solution():\n    return 1"),
        ("Here:\n```py\ndef solution():\n    return 2\n```\ntext", "def solution():\n    return 2"),
        ("```\nx = 1\n```\n```python\ndef solution():\n    return x\n```", "def solution():\n    return x"),
        ("```python\ndef solution():\n    return 3", "def solution():\n    return 3"),  # cut at max_tokens
        ("def solution():\n    return 4", "def solution():\n    return 4"),
        ("```python\nprint(5)\n```", "print(5)"),
    ],
)
def test_extract_code(text, expected):
    assert extract_code(text) == expected


@pytest.mark.parametrize("text", ["", "The answer is 5.", "```python\n\n```"])
def test_extract_code_none(text):
    assert extract_code(text) is None


@pytest.mark.parametrize(
    ("value", "stdout", "answer"),
    [("42", "", "42"), ("18.0", "", "18"), ("2.5", "", "2.5"), ("'Paris'", "", "Paris"),
     (None, "a\n7\n", "7"), ("None", "x\n", "x"), (None, "", None), ("Fraction(1, 3)", "", "Fraction(1, 3)")],
)
def test_answer_from_value(value, stdout, answer):
    assert answer_from_value(value, stdout) == answer


#: ``repr`` texts a crafted ``__repr__`` can return, each of which makes ``ast.literal_eval`` (or ``str`` of its
#: result) raise: RecursionError, MemoryError, SyntaxError, ValueError, TypeError.
HOSTILE_REPRS = {
    "recursion_add": "1" + "+1j" * 3000,
    "recursion_subscript": "[1]" + "[0]" * 3000,
    "recursion_unary": "-" * 5000 + "1",
    "memory_unary": "-" * 9000 + "1",
    "memory_invert": "~" * 9000 + "1",
    "nesting_syntax": "[" * 1000 + "]" * 1000,
    "int_digits_syntax": "9" * 5000,
    "hex_too_long_for_str": "0x" + "f" * 9000,
    "unhashable_dict_key": "{[]: 1}",
    "unhashable_set": "{{1}}",
    "null_byte": "'a'\x00",
    "over_the_cap": "[" + "1," * 20_000 + "]",
}


@pytest.mark.parametrize("value", HOSTILE_REPRS.values(), ids=HOSTILE_REPRS.keys())
def test_hostile_repr_stays_plain_text(value):
    assert answer_from_value(value, "") == value


def test_literal_over_the_cap_is_not_evaluated(monkeypatch):
    import ast

    monkeypatch.setattr(ast, "literal_eval", lambda _: pytest.fail("literal_eval was called"))
    long = "'" + "a" * LITERAL_MAX_CHARS + "'"
    assert answer_from_value(long, "") == long
