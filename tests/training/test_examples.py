"""SFTExample: where the prompt ends (the loss starts after the task's question turn)."""

from __future__ import annotations

from ponder.training.examples import ChatTurn, SFTExample


def _ex(*turns: tuple[str, str]) -> SFTExample:
    return SFTExample(messages=[ChatTurn(role=r, content=c) for r, c in turns])  # type: ignore[arg-type]


def test_prompt_ends_after_the_last_question_turn_before_a_reply() -> None:
    ex = _ex(("system", "s"), ("user", "Question: demo"), ("assistant", "demo reply"), ("user", "Observation: 1"),
             ("assistant", "demo final"), ("user", "Question: real"), ("assistant", "reply"),
             ("user", "Observation: 2"), ("assistant", "final"))
    assert ex.prompt_turns() == 6 and ex.assistant_turns() == 4


def test_without_a_question_turn_the_prompt_is_everything_before_the_first_reply() -> None:
    assert _ex(("system", "s"), ("user", "hi"), ("assistant", "hello")).prompt_turns() == 2
    assert _ex(("user", "Question: q"), ("user", "more")).prompt_turns() == 2  # no reply: all prompt
