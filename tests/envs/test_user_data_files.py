"""Files a user hands to ``ponder eval`` (``--data`` JSONL sets, TextWorld / MiniWoB suite files, ALFWorld
trials): every unreadable line or entry is named, nothing is played from a file that has one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import BadLinesError, DataError
from ponder.core.settings import load_settings
from ponder.envs.alfworld import AlfWorldSuite
from ponder.envs.miniwob.tasks import load_tasks
from ponder.envs.registry import get_suite
from ponder.envs.textworld.spec import load_suite_spec

ROW_A = '{"id": "a", "question": "1+1?", "answer": "2"}'
ROW_B = '{"id": "b", "question": "2+2?", "answer": "4"}'


def eval_data(tmp_path: Path, capsys: pytest.CaptureFixture[str], suite: str, text: str) -> tuple[int, Path, list[str]]:
    data = tmp_path / "mine.jsonl"
    data.write_text(text, encoding="utf-8")
    code = main(["eval", suite, "--data", str(data), "--policy", "gold" if suite != "humaneval" else "canonical",
                 "--out", str(tmp_path / "o"), "-q"])
    return code, data, capsys.readouterr().err.splitlines()


def test_eval_data_with_bad_lines_names_each_and_plays_nothing(tmp_path, capsys) -> None:
    text = "\n".join([ROW_A, '{"id": "x", "answer": "1"}', "not json", ROW_B, ROW_A]) + "\n"
    code, data, err = eval_data(tmp_path, capsys, "gsm8k", text)
    assert code == 2
    assert err == [f"{data}:2: bad row: question: Field required",
                   f"{data}:3: not valid JSON (Expecting value: column 1)",
                   f"{data}:5: duplicate id 'a' (first on line 1)",
                   f"ponder: error: {data}: 3 bad lines and 2 good: the file was refused; fix the lines listed"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("text", "message"), [
    ("", "data file {data} is empty"),
    ("\n\n", "data file {data} is empty"),
    ("{ not json\n", "{data}: no valid data line (1 bad line)"),
])
def test_eval_data_empty_or_all_bad_is_one_error_line(tmp_path, capsys, text, message) -> None:
    for suite in ("svamp", "humaneval"):
        code, data, err = eval_data(tmp_path, capsys, suite, text)
        assert code == 2 and err[-1] == "ponder: error: " + message.format(data=data)
        assert len(err) == (2 if "bad line" in message else 1)


def test_a_good_data_file_still_runs(tmp_path, capsys) -> None:
    code, _, err = eval_data(tmp_path, capsys, "gsm8k", f"{ROW_A}\n\n{ROW_B}\n")
    assert code == 0 and err == []
    rows = (tmp_path / "o" / "results.jsonl").read_text().splitlines()
    assert [json.loads(r)["episode_id"] for r in rows] == ["a", "b"]


def test_api_raises_bad_lines_error_with_every_line(tmp_path) -> None:
    data = tmp_path / "he.jsonl"
    data.write_text('{"task_id": "t/0", "prompt": "def f():", "entry_point": "f", "test": ""}\n[]\n{}\n')
    with pytest.raises(BadLinesError) as info:
        get_suite("humaneval").episodes(load_settings(), data)
    assert [lineno for lineno, _ in info.value.bad] == [2, 3]
    assert info.value.problems[0] == f"{data}:2: expected a JSON object, got list"


def test_textworld_suite_file_names_the_line_or_every_bad_field(tmp_path) -> None:
    bad = tmp_path / "suite.json"
    bad.write_text('{"name": "x",\n "tiers": {"1": {"generator": "put", "seeds": [1,]}}}\n')
    with pytest.raises(DataError, match=rf"^{bad}:2: not valid JSON"):
        load_suite_spec(bad)
    bad.write_text(json.dumps({"name": 3, "tiers": {"1": {"generator": "put", "seeds": "one"}}}))
    with pytest.raises(DataError) as info:
        load_suite_spec(bad)
    assert str(info.value).startswith(f"{bad}: invalid TextWorld suite file: name: Input should be a valid string")
    assert "seeds" in str(info.value)  # the second bad field is named too
    bad.write_text("")
    with pytest.raises(DataError, match="TextWorld suite file .* is empty"):
        load_suite_spec(bad)


def test_miniwob_task_file_names_every_bad_task(tmp_path) -> None:
    bad = tmp_path / "tasks.json"
    bad.write_text(json.dumps({"tasks": [{"task": "click-test"}, {"task": "Bad Name"}, {"task": "click-test"},
                                         {"tier": "easy"}]}))
    with pytest.raises(DataError) as info:
        load_tasks(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: 3 bad task(s): task #1: task: String should match pattern")
    assert "task #2: 'click-test' is listed twice" in message and "task #3: task: Field required" in message


def test_alfworld_trials_name_every_unreadable_file(tmp_path, monkeypatch) -> None:
    import ponder.envs.alfworld as alfworld

    monkeypatch.setattr(alfworld, "_require", lambda: None)  # reading the trial files needs no engine
    for name, traj in (("a", "{ torn"), ("b", json.dumps({"task_type": "pick"}))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "game.tw-pddl").write_text("{}")
        (tmp_path / name / "traj_data.json").write_text(traj)
    with pytest.raises(DataError) as info:
        AlfWorldSuite().episodes(load_settings(), tmp_path)
    message = str(info.value)
    assert message.startswith(f"2 unreadable ALFWorld trial(s) under {tmp_path}: ")
    assert f"{tmp_path / 'a' / 'traj_data.json'}:1: not valid JSON" in message
    assert f"{tmp_path / 'b' / 'traj_data.json'}: expected an object with a 'task_type' string" in message
