"""Gold rationales: GSM8K training solutions as ReAct trajectories and PAL programs, checked by replaying them.

ReAct: each annotated calculation becomes a step ``Thought: <the prose> / Action: calculator / Action Input:
<expression>`` whose observation is what ponder's own calculator returns; the last step is the final answer. PAL:
the calculations become a ``solution()`` program (later results referenced by name), run in ponder's sandbox. A
conversion is kept only when the replay reproduces every stated result and the gold answer; otherwise it is
dropped and counted by reason (:class:`GoldStats`). The examples carry the agent's real prompt
(:func:`ponder.training.prompt.agent_prefix`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from ponder.agents.parsing import parse_react
from ponder.core.answers import numbers_equal, parse_number
from ponder.core.errors import DataError
from ponder.core.settings import Settings, load_settings
from ponder.models.base import Message
from ponder.tools.base import ToolBox
from ponder.training.examples import ChatTurn, SFTExample
from ponder.training.gold_pal import pal_program
from ponder.training.gold_parse import GoldSolution, parse_solution, thought_for
from ponder.training.prompt import agent_prefix, question_turn

GoldAgent = Literal["react", "pal"]
#: The closing step of every gold ReAct trajectory (the format the ReAct prompt asks for).
FINAL = "Thought: I now know the final answer\nFinal Answer: {answer}"


class GoldStats(BaseModel):
    """How many rows were read, converted and dropped (by reason)."""

    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    tool_calls: int = 0

    def drop(self, reason: str) -> None:
        """Count one dropped row."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


class GoldRow(BaseModel):
    """A GSM8K training row (``data/gsm8k/train.jsonl``)."""

    id: str
    question: str
    answer: str
    solution: str


def _matches(observation: str, stated: str) -> bool:
    got, want = parse_number(observation), parse_number(stated)
    if got is None or want is None:
        return False
    if numbers_equal(got, want):
        return True
    # GSM8K states rounded results (1/3 = 0.33): equal once rounded to the stated number of decimals.
    text = stated.replace(",", "").strip().rstrip(".")
    decimals = len(text.rsplit(".", 1)[1]) if "." in text else 0
    return decimals > 0 and round(got, decimals) == want


def react_turns(solution: GoldSolution, tools: ToolBox, stats: GoldStats) -> list[Message] | None:
    """The assistant/observation turns of a gold ReAct run, or ``None`` (counted) when the replay disagrees."""
    if not solution.calcs:
        stats.drop("no_calculation")
        return None
    turns: list[Message] = []
    last = ""
    for calc in solution.calcs:
        raw = f"Thought: {thought_for(calc)}\nAction: calculator\nAction Input: {calc.expression}"
        parsed = parse_react(raw, tools.names())
        if parsed.kind != "action" or parsed.action_input != calc.expression:
            stats.drop("unparsable_step")
            return None
        result = tools.call("calculator", calc.expression)
        stats.tool_calls += 1
        if not result.ok or not _matches(result.observation, calc.result):
            stats.drop("calculator_disagrees")
            return None
        turns += [{"role": "assistant", "content": raw}, {"role": "user", "content": f"Observation: "
                                                                                      f"{result.observation}"}]
        last = result.observation
    gold = parse_number(solution.answer)
    if gold is None or not _matches(last, solution.answer):
        stats.drop("answer_not_computed")
        return None
    turns.append({"role": "assistant", "content": FINAL.format(answer=solution.answer)})
    return turns


def read_gold_rows(path: Path, limit: int | None = None) -> Iterator[GoldRow]:
    """Rows of a GSM8K-style JSONL file with ``solution`` fields.

    Only newlines end a line (some GSM8K questions hold Unicode line separators).

    Raises:
        DataError: for a missing file; :class:`~ponder.core.errors.BadLinesError` for rows without the fields.
    """
    from ponder.core.datafiles import read_jsonl_file

    return iter(read_jsonl_file(path, GoldRow.model_validate, what="GSM8K training", limit=limit).values())


def gold_examples(path: Path, agent: GoldAgent = "react", *, limit: int | None = None,
                  settings: Settings | None = None,
                  progress: Callable[[GoldStats], None] | None = None) -> tuple[list[SFTExample], GoldStats]:
    """Convert GSM8K training solutions into validated training conversations for ``agent``.

    Args:
        path: A JSONL file of ``{id, question, answer, solution}`` rows (``data/gsm8k/train.jsonl``).
        agent: ``react`` (calculator steps) or ``pal`` (a ``solution()`` program run in the sandbox).
        limit: Only the first N rows.
        settings: Settings for the tools and the sandbox (default: loaded).
        progress: Called with the running counts after each row.

    Returns:
        The kept examples and the counts (read, kept, dropped by reason, tool calls).
    """
    settings = settings or load_settings()
    stats = GoldStats()
    prefix = agent_prefix(agent, ("calculator", "python"), settings)
    examples: list[SFTExample] = []
    convert = _react_converter(settings) if agent == "react" else _pal_converter(settings)
    try:
        for row in read_gold_rows(path, limit):
            stats.read += 1
            turns = convert.run(row, stats)
            if turns is not None:
                stats.kept += 1
                messages = [*prefix, question_turn(row.question), *turns]
                examples.append(SFTExample(messages=[ChatTurn(**m) for m in messages],
                                           metadata={"source": f"gold-{agent}", "task_id": row.id,
                                                     "task": row.question, "agent": agent, "answer": row.answer,
                                                     "hint": False}))
            if progress is not None:
                progress(stats)
    finally:
        convert.close()
    return examples, stats


class _Converter:
    def __init__(self, run: Callable[[GoldRow, GoldStats], list[Message] | None],
                 close: Callable[[], None] = lambda: None) -> None:
        self.run = run
        self.close = close


def _solution_or_drop(row: GoldRow, stats: GoldStats) -> GoldSolution | None:
    try:
        solution = parse_solution(row.solution)
    except DataError:
        stats.drop("no_final_answer")
        return None
    if parse_number(solution.answer) is None or not _matches(solution.answer, row.answer):
        stats.drop("answer_mismatch")
        return None
    return solution


def _react_converter(settings: Settings) -> _Converter:
    from ponder.tools.registry import build_tools

    tools = ToolBox(build_tools(["calculator"], settings))

    def run(row: GoldRow, stats: GoldStats) -> list[Message] | None:
        solution = _solution_or_drop(row, stats)
        return react_turns(solution, tools, stats) if solution is not None else None

    return _Converter(run)


def _pal_converter(settings: Settings) -> _Converter:
    from ponder.agents.parsing import answer_from_value, extract_code
    from ponder.tools.sandbox import open_sandbox

    session = open_sandbox(settings)

    def run(row: GoldRow, stats: GoldStats) -> list[Message] | None:
        solution = _solution_or_drop(row, stats)
        if solution is None:
            return None
        if not solution.calcs:
            stats.drop("no_calculation")
            return None
        reply = f"```python\n{pal_program(solution)}\n```"
        code = extract_code(reply)
        result = session.run(f"{code}\n\nsolution()")
        stats.tool_calls += 1
        answer = answer_from_value(result.value, result.stdout) if result.ok else None
        if answer is None or not _matches(answer, row.answer):
            stats.drop("program_disagrees")
            return None
        return [{"role": "assistant", "content": reply}]

    return _Converter(run, session.close)
