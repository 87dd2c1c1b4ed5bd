"""``ponder run --output-schema FILE``: the object in --json and after the answer; bad schemas fail fast (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main

SCHEMA = {"title": "Sum", "type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]}


def script(tmp_path: Path, *texts: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    return f"scripted:{path}"


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    path = tmp_path / "sum.json"
    path.write_text(json.dumps(SCHEMA))
    return str(path)


def test_json_prints_the_output(tmp_path: Path, schema_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    spec = script(tmp_path, "Final Answer: 5", 'Sure:\n```json\n{"total": "5 apples"}\n```', '{"total": 5}')
    rc = main(["run", "What is 2+3?", "--model", spec, "--out", str(tmp_path / "out"), "--json",
               "--output-schema", schema_file])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["answer"] == "5" and out["output"] == {"total": 5}
    assert out["output_check"] == {"valid": True, "method": "text", "attempts": 2, "errors": [], "schema": "Sum"}
    assert out["usage"]["model_calls"] == 3


def test_a_pydantic_model_file_and_the_pretty_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "answer.py"
    models.write_text("from pydantic import BaseModel\n\nclass Answer(BaseModel):\n    city: str\n    country: str\n")
    spec = script(tmp_path, "Final Answer: Paris", '{"city": "Paris", "country": "France"}')
    rc = main(["run", "Capital of France?", "--model", spec, "--out", str(tmp_path), "--output-schema",
               f"{models}:Answer"])
    out = capsys.readouterr().out
    assert rc == 0 and "Output" in out and '"country": "France"' in out
    assert out.index("Paris") < out.index('"city"')  # the object comes after the text answer


def test_an_invalid_object_is_reported_and_the_run_kept(tmp_path: Path, schema_file: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = script(tmp_path, "Final Answer: 5", "five", "{}")
    rc = main(["run", "What is 2+3?", "--model", spec, "--out", str(tmp_path), "--json",
               "--output-schema", schema_file])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["answer"] == "5" and out["status"] == "solved" and out["output"] is None
    check = out["output_check"]
    assert check["valid"] is False and "'total' is a required property" in check["errors"][0]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", '{"type": ', "not valid JSON"),
    ("invalid.json", '{"type": "nope"}', "not a valid JSON Schema"),
    ("m.py:Missing", "X = 1\n", "has no attribute 'Missing'"),
])
def test_bad_schemas_fail_before_the_model_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                                 text: str, message: str) -> None:
    (tmp_path / name.split(":")[0]).write_text(text)
    # the model spec names a missing script: had it been loaded first, the error would be about the script
    rc = main(["run", "q", "--model", f"scripted:{tmp_path / 'missing.jsonl'}", "--output-schema",
               str(tmp_path / name)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1


def test_a_vote_structures_only_the_voted_answer(tmp_path: Path, schema_file: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = script(tmp_path, "Final Answer: 5", "Final Answer: 5", "Final Answer: 5", '{"total": 5}')
    rc = main(["run", "q", "--model", spec, "--out", str(tmp_path), "--samples", "3", "--json",
               "--output-schema", schema_file])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["strategy"] == "sc" and out["answer"] == "5" and out["output"] == {"total": 5}
    assert out["output_check"]["attempts"] == 1 and out["usage"]["model_calls"] == 4  # 3 samples, 1 structuring


def test_a_vote_prints_the_object_after_the_answer(tmp_path: Path, schema_file: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = script(tmp_path, "Final Answer: 5", "Final Answer: 5", "not json", "still not json")
    rc = main(["run", "q", "--model", spec, "--out", str(tmp_path), "--samples", "2", "--output-schema", schema_file])
    out = capsys.readouterr().out
    assert rc == 0 and out.index("Final Answer") < out.index("Output not valid") and "no JSON value" in out


def test_best_of_n_structures_the_chosen_answer(tmp_path: Path, schema_file: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = script(tmp_path, "Final Answer: 5", "Final Answer: 5", *['{"total": 5}'] * 4)
    rc = main(["run", "q", "--model", spec, "--out", str(tmp_path), "--strategy", "best_of_n", "--samples", "2",
               "--json", "--output-schema", schema_file])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["answer"] == "5" and out["output"] == {"total": 5} and out["output_check"]["valid"]


def test_each_trial_structures_its_answer(tmp_path: Path, schema_file: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_MEMORY_PATH", str(tmp_path / "memory"))
    spec = script(tmp_path, "Final Answer: 4", '{"total": 4}', "Final Answer: 5", '{"total": 5}')
    rc = main(["run", "What is 2+3?", "--model", spec, "--out", str(tmp_path), "--trials", "2", "--label", "5",
               "--json", "--output-schema", schema_file])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["answer"] == "5" and out["output"] == {"total": 5} and len(out["trials"]) == 2
    records = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert [r["output"] for r in records] == [{"total": 4}, {"total": 5}]
