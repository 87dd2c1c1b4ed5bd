"""Gold rationales: GSM8K annotations -> ReAct calculator steps and PAL programs, replayed through the tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.parsing import parse_react
from ponder.core.answers import is_correct
from ponder.core.errors import DataError
from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.registry import build_tools
from ponder.training.examples import iter_examples, write_examples
from ponder.training.gold import GoldStats, gold_examples, react_turns
from ponder.training.gold_pal import pal_program, python_expression
from ponder.training.gold_parse import parse_solution, thought_for
from ponder.training.prompt import agent_prefix

NATALIA = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
           "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72")


def _rows(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_parse_solution_reads_annotations_leads_and_answer() -> None:
    sol = parse_solution("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nA line without a calculation.\n"
                         "So 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10")
    assert [(c.expression, c.result) for c in sol.calcs] == [("12/60", "0.2"), ("0.2*50", "10")]
    assert sol.calcs[0].lead == "Weng earns 12/60"
    assert sol.calcs[1].lead == "A line without a calculation. So 0.2 x 50"  # prose carried into the next step
    assert sol.answer == "10"
    assert thought_for(sol.calcs[0]) == "Weng earns 12/60."


def test_parse_solution_without_answer_line_is_a_data_error() -> None:
    with pytest.raises(DataError, match="####"):
        parse_solution("48/2 = <<48/2=24>>24")


def test_react_conversion_round_trips_through_the_real_calculator() -> None:
    tools = ToolBox(build_tools(["calculator"], load_settings()))
    stats = GoldStats()
    turns = react_turns(parse_solution(NATALIA), tools, stats)
    assert turns is not None
    assert [t["role"] for t in turns] == ["assistant", "user", "assistant", "user", "assistant"]
    assert turns[1]["content"] == "Observation: 24" and turns[3]["content"] == "Observation: 72"
    for reply in (turns[0]["content"], turns[2]["content"]):
        parsed = parse_react(reply, ["calculator", "python"])  # the agent's own parser reads each step
        assert parsed.kind == "action" and parsed.action == "calculator"
        assert tools.call("calculator", parsed.action_input or "").observation in turns[1]["content"] + \
            turns[3]["content"]
    final = parse_react(turns[-1]["content"], ["calculator"])
    assert final.kind == "final" and final.final_answer == "72"
    assert stats.tool_calls == 2


def test_conversion_that_does_not_reproduce_is_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "question": "Q1", "answer": "72", "solution": NATALIA},
        {"id": "bad-calc", "question": "Q2", "answer": "25", "solution": "2+2 = <<2+2=5>>5 and 5*5=<<5*5=25>>25\n"
                                                                            "#### 25"},
        {"id": "prose-answer", "question": "Q3", "answer": "9", "solution": "3*2 = <<3*2=6>>6, plus 3 is 9\n#### 9"},
        {"id": "none", "question": "Q4", "answer": "4", "solution": "Four.\n#### 4"},
        {"id": "gold-mismatch", "question": "Q5", "answer": "8", "solution": "4*2 = <<4*2=8>>8\n#### 7"},
    ]
    examples, stats = gold_examples(_rows(tmp_path, rows), "react")
    assert [e.metadata["task_id"] for e in examples] == ["ok"]
    assert stats.read == 5 and stats.kept == 1
    assert stats.dropped == {"calculator_disagrees": 1, "answer_not_computed": 1, "no_calculation": 1,
                             "answer_mismatch": 1}


def test_react_examples_start_with_the_agents_real_prompt(tmp_path: Path) -> None:
    rows = [{"id": "n", "question": "How many clips?", "answer": "72", "solution": NATALIA}]
    (example,), _ = gold_examples(_rows(tmp_path, rows), "react")
    prefix = agent_prefix("react")
    assert [t.model_dump() for t in example.messages[: len(prefix)]] == prefix
    assert example.messages[len(prefix)].content == "Question: How many clips?"
    assert example.metadata["source"] == "gold-react" and example.metadata["hint"] is False
    out = tmp_path / "gold.jsonl"
    write_examples(out, [example])
    assert list(iter_examples(out)) == [example]


def test_python_expression_names_earlier_results() -> None:
    assert python_expression("48+24", {"24": "step1"}) == "48+step1"
    assert python_expression("0.2 x 50", {"0.2": "step1"}) == "step1 * 50"
    assert python_expression("2^3", {}) == "2**3"
    assert python_expression("1,000*2", {}) == "1000*2"
    assert python_expression("124+24", {"24": "step1"}) == "124+step1"  # whole numbers only, not digits inside


def test_pal_program_runs_in_the_sandbox_to_the_gold_answer(tmp_path: Path) -> None:
    program = pal_program(parse_solution(NATALIA))
    assert "step2 = 48+step1" in program and program.rstrip().endswith("return step2")
    rows = [{"id": "n", "question": "Q", "answer": "72", "solution": NATALIA},
            {"id": "w", "question": "Q2", "answer": "11", "solution": "2+2 = <<2+2=4>>4\n#### 11"}]
    examples, stats = gold_examples(_rows(tmp_path, rows), "pal")
    assert stats.kept == 1 and stats.dropped == {"program_disagrees": 1}  # the program returns 4, not 11
    reply = examples[0].messages[-1].content
    assert examples[0].messages[0].content == agent_prefix("pal")[0]["content"]
    assert reply.startswith("```python\ndef solution():") and is_correct("72", examples[0].metadata["answer"])


def test_shipped_gsm8k_train_converts_mostly() -> None:
    path = Path(load_settings().data_dir) / "gsm8k" / "train.jsonl"
    examples, stats = gold_examples(path, "react", limit=200)
    assert stats.read == 200 and stats.kept == len(examples)
    assert stats.kept >= 170, stats  # 92-94 % of GSM8K-train solutions reproduce their answer
    assert sum(stats.dropped.values()) == stats.read - stats.kept


def test_bad_rows_are_data_errors_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "question": "q", "answer": "1"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl:1"):
        gold_examples(path, "react")
    with pytest.raises(DataError, match="file not found"):
        gold_examples(tmp_path / "missing.jsonl", "react")


def test_stated_results_match_to_their_precision_only() -> None:
    from ponder.training.gold import _matches

    assert _matches("10/3 ≈ 3.33333333333", "3.33")  # GSM8K rounds to the decimals it states
    assert _matches("24", "24") and _matches("0.2", "0.2")
    assert not _matches("2005", "2000")  # not "within 1 %"
    assert _matches("3.34", "3.3") and not _matches("3.36", "3.3")


def test_a_unicode_line_separator_inside_a_row_is_not_a_line_break(tmp_path: Path) -> None:
    rows = [{"id": "sep", "question": "Clive opens a box.\u2028How many balls?", "answer": "72", "solution": NATALIA}]
    examples, stats = gold_examples(_rows(tmp_path, rows), "react")
    assert stats.read == 1 and examples[0].metadata["task"] == "Clive opens a box.\u2028How many balls?"
