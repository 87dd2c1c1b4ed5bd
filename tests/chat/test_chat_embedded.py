"""One short chat turn with the real embedded model (SmolLM2-135M), streamed on a pseudo-terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.integration
def test_one_turn_with_the_embedded_model(terminal, chat_env: dict[str, str], tmp_path: Path) -> None:
    chat_env.pop("PONDER_FORBID_REAL_MODEL")
    chat_env["PONDER_LLAMACPP_THREADS"] = "1"
    term = terminal("--model", "embedded", "--max-steps", "2", "--max-tokens", "40")
    term.wait("/help for commands", timeout=300)
    term.wait("you>")
    term.line("What is 2+3?")
    shown = term.wait(" steps · react", timeout=300)
    assert "Answer" in shown and "Traceback" not in shown
    term.wait("you>")
    term.line("/quit")
    assert term.close() == 0
    [record] = [json.loads(line) for line in (tmp_path / "runs" / "trajectories.jsonl").read_text().splitlines()]
    assert record["task"] == "What is 2+3?" and record["steps"] and record["steps"][0]["completion_tokens"] > 0
    assert record["backend"] in ("llamacpp", "transformers")
