"""One short chat turn with the real embedded model (SmolLM2-135M), streamed on a pseudo-terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: The ``make demo`` question. Measured (greedy, 40 tokens): the first reply is a well-formed Final Answer ("21")
#: on llama.cpp and on transformers. "What is 2+3?" is not: both backends reply "Thought: 2 + 3 = 5" and then
#: write the Observation themselves (cut by the stop sequence), twice.
QUESTION = "A shop sells 3 boxes of 12 pencils and 7 loose pencils. How many pencils is that?"


@pytest.mark.integration
def test_one_turn_with_the_embedded_model(terminal, chat_env: dict[str, str], tmp_path: Path) -> None:
    """Floor: the turn reaches a well-formed Final Answer or tool call, and the screen shows the answer."""
    chat_env.pop("PONDER_FORBID_REAL_MODEL")
    chat_env["PONDER_LLAMACPP_THREADS"] = "1"
    term = terminal("--model", "embedded", "--max-steps", "2", "--max-tokens", "40")
    term.wait("/help for commands", timeout=300)
    term.wait("you>")
    term.line(QUESTION)
    shown = term.wait(" steps · react", timeout=300)
    assert "Answer" in shown and "Traceback" not in shown
    term.wait("you>")
    term.line("/quit")
    assert term.close() == 0
    [record] = [json.loads(line) for line in (tmp_path / "runs" / "trajectories.jsonl").read_text().splitlines()]
    assert record["task"] == QUESTION and record["steps"] and record["backend"] in ("llamacpp", "transformers")
    assert record["status"] in ("solved", "max_steps", "parse_error")
    parsed = [s for s in record["steps"] if s["kind"] in ("final", "action")]
    assert parsed and parsed[0]["completion_tokens"] > 0, [s["raw"] for s in record["steps"]]
    if record["status"] == "solved":
        assert record["final_answer"] and record["final_answer"] in shown
