import pytest

from ponder.core.errors import DataError
from ponder.core.io import append_jsonl, read_jsonl
from ponder.core.records import Step, Trajectory


def make(i):
    return Trajectory(task=f"t{i}", agent="react", model="scripted", status="solved", final_answer=str(i),
                      steps=[Step(index=0, kind="final", raw=f"Final Answer: {i}")])


def test_roundtrip(tmp_path):
    path = tmp_path / "sub" / "t.jsonl"
    for i in range(3):
        append_jsonl(path, make(i))
    loaded = list(read_jsonl(path))
    assert [t.final_answer for t in loaded] == ["0", "1", "2"]
    assert loaded[0].steps[0].kind == "final"


def test_truncated_last_line_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    append_jsonl(path, make(0))
    with open(path, "a") as fh:
        fh.write(make(1).model_dump_json()[:40])  # a crash mid-write
    assert [t.final_answer for t in read_jsonl(path)] == ["0"]


def test_bad_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "t.jsonl"
    append_jsonl(path, make(0))
    with open(path, "a") as fh:
        fh.write('{"task": "x"}\n')
    append_jsonl(path, make(2))
    with pytest.raises(DataError, match=r"t.jsonl:2: invalid record"):
        list(read_jsonl(path))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such records file"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


def test_step_to_messages():
    step = Step(index=0, kind="action", raw="Action: a\nAction Input: 1", observation="2")
    assert step.to_messages() == [{"role": "assistant", "content": "Action: a\nAction Input: 1"},
                                  {"role": "user", "content": "Observation: 2"}]
    assert Step(index=1, kind="final", raw="Final Answer: 2").to_messages() == [
        {"role": "assistant", "content": "Final Answer: 2"}]
