"""``ponder star`` end to end on the real embedded model: one round on 2 GSM8K training questions x 2 samples,
one optimizer step (seed data keeps the round's data non-empty whatever the model samples), held-out evaluation
of the base and of the round's GGUF on llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.training.examples import ChatTurn, SFTExample, iter_examples, write_examples
from ponder.training.prompt import agent_prefix, question_turn

pytestmark = pytest.mark.integration


def _seed(path: Path) -> Path:
    turns = [*agent_prefix("react"), question_turn("What is 17 * 3?"),
             {"role": "assistant", "content": "Thought: multiply\nAction: calculator\nAction Input: 17 * 3"},
             {"role": "user", "content": "Observation: 51"},
             {"role": "assistant", "content": "Thought: I now know the final answer\nFinal Answer: 51"}]
    write_examples(path, [SFTExample(messages=[ChatTurn(**t) for t in turns], metadata={"source": "test"})])
    return path


def test_one_star_round_on_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_MAX_STEPS", "3")  # short episodes: this test checks the plumbing, not accuracy
    out = tmp_path / "star"
    args = ["star", "gsm8k", "--out", str(out), "--train-limit", "2", "--samples", "2", "--eval-limit", "1",
            "--max-steps", "1", "--grad-accum", "1", "--max-length", "512", "--seed-data",
            str(_seed(tmp_path / "seed.jsonl")), "-q"]
    assert main(args) == 0
    summary = json.loads((out / "star.json").read_text())
    assert summary["rounds"].keys() == {"0", "1"}
    one = summary["rounds"]["1"]
    assert one["train"]["steps"] == 1 and one["train"]["train_tokens"] > 0
    gguf = out / "round-1" / "model" / "model.gguf"
    assert gguf.is_file() and one["train"]["model_spec"] == f"llamacpp:{gguf.resolve()}"
    manifest = json.loads((out / "round-1" / "eval-gsm8k" / "run.json").read_text())
    assert manifest["model"] == one["train"]["model_spec"]
    assert one["eval-gsm8k"]["episodes"] == 1 and summary["rounds"]["0"]["eval-gsm8k"]["episodes"] == 1
    examples = list(iter_examples(out / "round-1" / "data.jsonl"))
    assert len(examples) == one["data"]["examples"] >= 1
    assert all("The answer is" not in t.content for e in examples for t in e.messages if t.role == "user")
    assert "| 1 | gsm8k |" in (out / "report.md").read_text()
