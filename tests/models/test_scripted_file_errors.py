"""A scripted-model file (``scripted:<file.jsonl>``) is read strictly: every bad line is named, an empty
script is an error, and ``ponder run`` stops with exit code 2 before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import BadLinesError, ConfigError, DataError
from ponder.models.base import GenerationParams
from ponder.models.scripted import ScriptedModel


def test_every_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('"Final Answer: 1"\n{"text": 3}\n{"text": "x", "delay": -1}\n{"text": "y", "delay": true}\n'
                    '"Final Answer: 2')
    with pytest.raises(BadLinesError) as info:
        ScriptedModel.from_jsonl(path)
    assert info.value.problems == [
        f"{path}:2: expected a string or an object with a 'text' string",
        f"{path}:3: 'delay' must be a number of seconds >= 0",
        f"{path}:4: 'delay' must be a number of seconds >= 0",
        f"{path}:5: not valid JSON (Unterminated string starting at: column 1)"]


def test_empty_missing_and_good_scripts(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="scripted model file .*empty.jsonl is empty"):
        ScriptedModel.from_jsonl(empty)
    with pytest.raises(ConfigError, match="scripted model file not found"):
        ScriptedModel.from_jsonl(tmp_path / "missing.jsonl")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps("Final Answer: 1") + "\n" + json.dumps({"text": "Final Answer: 2", "delay": 0}) + "\n")
    model = ScriptedModel.from_jsonl(good)
    texts = [model.generate([{"role": "user", "content": "q"}], GenerationParams())[0].text for _ in range(2)]
    assert texts == ["Final Answer: 1", "Final Answer: 2"] and model.spec == f"scripted:{good}"


def test_ponder_run_with_a_bad_script_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('"Final Answer: 1"\n[1]\n')
    assert main(["run", "What is 1?", "--model", f"scripted:{path}", "--out", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:2: expected a string or an object with a 'text' string",
        f"ponder: error: {path}: 1 bad line and 1 good: the file was refused; fix the lines listed"]
    assert not (tmp_path / "runs").exists()
