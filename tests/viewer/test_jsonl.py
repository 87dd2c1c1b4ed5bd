"""viewer.jsonl: the incremental byte-offset index of a JSONL file."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from ponder.core.records import Step, Trajectory, Usage
from ponder.viewer import jsonl
from ponder.viewer.jsonl import JsonlFile, LineProblem


def _traj(i: int) -> str:
    traj = Trajectory(id=f"t{i}", task=f"what is {i}+{i}?", agent="react", model="fake", status="solved",
                      final_answer=str(2 * i), steps=[Step(index=0, kind="final", raw=f"Final Answer: {2 * i}")],
                      usage=Usage(prompt_tokens=10, completion_tokens=i))
    return traj.model_dump_json()


def _write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.write(text)


def test_index_offsets_and_read(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    _write(path, "".join(_traj(i) + "\n" for i in range(3)))
    jf = JsonlFile(path)
    assert jf.refresh() == 3
    refs = jf.lines
    assert [r.number for r in refs] == [1, 2, 3]
    assert all(r.state == "ok" and r.error is None for r in refs)
    data = path.read_bytes()
    for ref in refs:
        assert data[ref.offset + ref.length:ref.offset + ref.length + 1] == b"\n"
        assert json.loads(data[ref.offset:ref.offset + ref.length])["id"] == f"t{ref.number - 1}"
    assert jf.read(2)["id"] == "t1"
    assert Trajectory.model_validate(jf.read(3)).final_answer == "4"
    with pytest.raises(KeyError):
        jf.read(4)
    assert [obj["id"] for _, obj in jf.scan(1)] == ["t1", "t2"]
    assert jf.raw(1, limit=8) == _traj(0)[:8]


def test_malformed_middle_line_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes((_traj(0) + "\n" + '{"id": "x" "oops"}\n' + "\n" + "[1, 2]\n").encode() + b'{"a": "\xff"}\n'
                     + (_traj(5) + "\n").encode())
    jf = JsonlFile(path)
    jf.refresh()
    states = {r.number: (r.state, r.error) for r in jf.lines}
    assert 3 not in states  # the blank line gets no ref but keeps its number
    assert states[1] == ("ok", None)
    assert states[2][0] == "malformed" and states[2][1] == "not JSON: Expecting ',' delimiter (col 12)"
    assert states[4] == ("malformed", "not an object (a JSON list)")
    assert states[5] == ("malformed", "not UTF-8 (byte 8)")
    assert states[6] == ("ok", None)
    assert jf.read(6)["id"] == "t5"
    with pytest.raises(LineProblem) as info:
        jf.read(2)
    assert info.value.ref.number == 2 and '"oops"' in info.value.excerpt
    with pytest.raises(KeyError):
        jf.read(3)
    assert [obj is None for _, obj in jf.scan()] == [False, True, True, True, False]


def test_torn_last_line_completed_on_next_refresh(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    line = _traj(1)
    _write(path, _traj(0) + "\n" + line[:40])
    jf = JsonlFile(path)
    assert jf.refresh() == 2
    torn = jf.lines[-1]
    assert torn.state == "torn" and torn.number == 2 and torn.error.startswith("not JSON: ")
    assert jf.complete == 1
    with pytest.raises(LineProblem):
        jf.read(2)
    _write(path, line[40:] + "\n")
    assert jf.refresh() == 0  # the same line, finished: no new line
    assert [r.state for r in jf.lines] == ["ok", "ok"] and jf.complete == 2
    assert jf.read(2)["id"] == "t1"
    _write(path, _traj(2) + "\n")
    assert jf.refresh() == 1 and jf.read(3)["id"] == "t2"


def test_torn_line_cut_by_a_crash_stays_torn_and_later_lines_count_on(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    _write(path, _traj(0)[:30])
    jf = JsonlFile(path)
    jf.refresh()
    assert [r.state for r in jf.lines] == ["torn"]
    _write(path, "\n" + _traj(1) + "\n")  # a resumed writer starts a fresh line
    jf.refresh()
    assert [(r.number, r.state) for r in jf.lines] == [(1, "malformed"), (2, "ok")]


def test_refresh_reads_only_appended_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "trajectories.jsonl"
    first = "".join(_traj(i) + "\n" for i in range(50))
    _write(path, first)
    parsed: list[bytes] = []
    real = jsonl.parse_line
    monkeypatch.setattr(jsonl, "parse_line", lambda data: (parsed.append(data), real(data))[1])
    jf = JsonlFile(path)
    jf.refresh()
    assert jf.bytes_read == len(first.encode()) and len(parsed) == 50
    assert jf.refresh() == 0 and jf.bytes_read == len(first.encode()) and len(parsed) == 50  # nothing new
    more = _traj(50) + "\n" + _traj(51) + "\n"
    _write(path, more)
    parsed.clear()
    assert jf.refresh() == 2
    assert jf.bytes_read == len((first + more).encode())  # only the appended bytes were read
    assert [json.loads(p)["id"] for p in parsed] == ["t50", "t51"]  # only the new lines were parsed
    assert jf.read(52)["id"] == "t51"


def test_small_blocks_split_lines_across_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonl, "BLOCK", 7)
    path = tmp_path / "trajectories.jsonl"
    _write(path, "".join(_traj(i) + "\n" for i in range(4)) + "\n" + _traj(4) + "\n")
    jf = JsonlFile(path)
    assert jf.refresh() == 5
    assert [r.number for r in jf.lines] == [1, 2, 3, 4, 6]
    assert [jf.read(r.number)["id"] for r in jf.lines] == ["t0", "t1", "t2", "t3", "t4"]


def test_replaced_and_shrunk_file_is_rescanned(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    _write(path, "".join(_traj(i) + "\n" for i in range(3)))
    jf = JsonlFile(path)
    jf.refresh()
    generation = jf.generation
    _write(path, _traj(9) + "\n", mode="w")  # truncated in place and rewritten: shorter
    assert jf.refresh() == 1
    assert jf.generation == generation + 1
    assert [r.number for r in jf.lines] == [1] and jf.read(1)["id"] == "t9"
    replacement = tmp_path / "new.jsonl"
    _write(replacement, "".join(_traj(i) + "\n" for i in range(20, 24)))
    os.replace(replacement, path)  # an atomic rewrite: another inode, longer
    assert jf.refresh() == 4
    assert jf.generation == generation + 2
    assert [jf.read(r.number)["id"] for r in jf.lines] == ["t20", "t21", "t22", "t23"]


def test_missing_and_deleted_file(tmp_path: Path) -> None:
    path = tmp_path / "search.jsonl"
    jf = JsonlFile(path)
    assert jf.refresh() == 0 and jf.lines == []
    _write(path, _traj(0) + "\n")
    assert jf.refresh() == 1
    path.unlink()
    assert jf.refresh() == 0 and jf.lines == [] and jf.mtime is None


def test_concurrent_refresh_and_append(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    path.touch()
    jf = JsonlFile(path)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                jf.refresh()
                for ref in jf.lines:
                    if ref.state == "ok":
                        jf.read(ref.number)
            except BaseException as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(200):
        line = _traj(i) + "\n"
        _write(path, line[:25])
        _write(path, line[25:])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    jf.refresh()
    assert len(jf.lines) == 200 and all(r.state == "ok" for r in jf.lines)
    assert [r.number for r in jf.lines] == list(range(1, 201))
