"""``ponder chat`` on the real embedded model answers the issue's question with well-formed steps (grammar-constrained
by default), driven on a pseudo-terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: Free (unconstrained), the embedded model wrote "Thought: 12 * 7 + 5" three times, got three format reminders and
#: ended with "(no answer)".
QUESTION = "What is 12 times 7 plus 5?"


@pytest.mark.integration
def test_the_calculator_question_gets_well_formed_steps(terminal, chat_env: dict[str, str], tmp_path: Path) -> None:
    chat_env.pop("PONDER_FORBID_REAL_MODEL")
    chat_env["PONDER_LLAMACPP_THREADS"] = "2"
    term = terminal("--model", "embedded", "--max-steps", "3", "--temperature", "0", "--verbose")
    term.wait("agent steps: grammar-constrained (--constrained auto)", timeout=300)
    term.wait("you>")
    term.line(QUESTION)
    shown = term.wait(" steps · react", timeout=300)
    assert "Malformed reply" not in shown and "Traceback" not in shown, shown
    term.wait("you>")
    term.line("/quit")
    assert term.close() == 0
    [record] = [json.loads(line) for line in (tmp_path / "runs" / "trajectories.jsonl").read_text().splitlines()]
    assert record["backend"] == "llamacpp" and record["metadata"]["grammar"] == "react"
    steps = record["steps"]
    assert steps and all(s["kind"] in ("action", "final") for s in steps), [s["raw"] for s in steps]
    assert steps[0]["raw"].startswith("Thought: ") and record["status"] in ("solved", "max_steps")
