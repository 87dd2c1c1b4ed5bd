"""viewer.catalog and viewer.rows: run discovery, rows built incrementally, id maps, summaries, live."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from ponder.core.errors import DataError
from ponder.core.records import Step, Trajectory, Usage
from ponder.core.viewlinks import run_key
from ponder.envs.base import EpisodeResult
from ponder.envs.metrics import wilson_interval
from ponder.graphs.search.tree import SearchTree, TreeNode
from ponder.graphs.self_consistency.records import SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.voting import VoteRow
from ponder.viewer import catalog as catalog_mod
from ponder.viewer.catalog import Catalog, RunEntry


def _traj(tid: str, *, status: str = "solved", answer: str | None = "4", steps: int = 2, **meta: object) -> Trajectory:
    return Trajectory(id=tid, task=f"task of {tid}", agent="react", model="qwen-test", status=status,
                      final_answer=answer, created="2026-01-02T03:04:05+00:00",
                      steps=[Step(index=i, kind="action", action="calculator", action_input="2+2", observation="4")
                             for i in range(steps)],
                      usage=Usage(prompt_tokens=100, completion_tokens=20, wall_seconds=1.5), metadata=dict(meta))


def _result(eid: str, success: bool, tids: list[str], **extra: object) -> EpisodeResult:
    return EpisodeResult(episode_id=eid, suite="gsm8k", task=f"question {eid}", tier="easy" if success else "hard",
                         success=success, score=float(success), prediction="4" if success else "5", gold="4",
                         status="solved", failure="" if success else "wrong_answer", trajectory_ids=tids,
                         usage=Usage(prompt_tokens=50, completion_tokens=10, model_calls=3), **extra)


def _append(path: Path, *records: object) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write((record if isinstance(record, str) else record.model_dump_json()) + "\n")


def _manifest(folder: Path, **changes: object) -> None:
    data = {"suite": "gsm8k", "episodes": 3, "policy": "agent", "policy_kind": "agent", "strategy": "sc",
            "settings": {"model": "qwen-manifest", "agent": "pal"}, "model": "qwen-manifest",
            "started": "2026-01-01T00:00:00+00:00", "starts": []}
    data.update(changes)
    (folder / "run.json").write_text(json.dumps(data), encoding="utf-8")


def _eval_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _manifest(folder)
    samples = [SampleRecord(index=i, wave=0, temperature=0.7, top_p=0.95, key="4", trajectory=_traj(f"s{i}"))
               for i in range(2)]
    vote = SelfConsistencyResult(id="vote1", task="question e1", agent="react", model="qwen-test", samples_planned=2,
                                 samples_run=2, final_answer="4", winner_key="4",
                                 votes=[VoteRow(key="4", answer="4", votes=2, weight=2.0, samples=[0, 1])],
                                 samples=samples)
    tree = SearchTree(id="tree1", strategy="beam", task="question e2",
                      nodes=[TreeNode(id=0), TreeNode(id=1, parent=0, depth=1, terminal=True, value=1.0)],
                      chosen=[0, 1])
    _append(folder / "trajectories.jsonl", _traj("t1"), _traj("t2", steps=5, search_tree_id="tree1"),
            _traj("t3", status="max_steps", answer=None))
    _append(folder / "self_consistency.jsonl", vote)
    _append(folder / "search.jsonl", tree)
    _append(folder / "results.jsonl", _result("e1", True, ["t1"], metadata={"self_consistency_id": "vote1"}),
            _result("e2", True, ["t2"]), _result("e3", False, ["t3"]))
    return folder


def test_eval_entry_rows_maps_and_summary(tmp_path: Path) -> None:
    entry = RunEntry.open(_eval_folder(tmp_path / "ev"), "ev")
    assert entry.key == run_key(tmp_path / "ev") and entry.kind == "eval" and entry.manifest_error is None
    assert [r.id for r in entry.rows] == ["e1", "e2", "e3"] and [r.line for r in entry.rows] == [1, 2, 3]
    e1, e2, e3 = entry.rows
    assert e1.vote_id == "vote1" and e1.success is True and e1.trajectory_ids == ["t1"] and e1.tokens == 60
    assert e2.steps == 5  # env_steps 0: the trajectory's own steps
    assert e3.failure == "wrong_answer" and e3.success is False and e3.tier == "hard"
    assert entry.trajectory_line("t3") == 3 and entry.trajectory_line("nope") is None
    assert entry.vote_line("vote1") == 1 and entry.search_line("tree1") == 1 and entry.search_line("x") is None
    s = entry.summary()
    assert (s.episodes, s.problems, s.successes) == (3, 0, 2)
    assert s.success_rate == pytest.approx(2 / 3)
    assert (s.ci_low, s.ci_high) == pytest.approx(wilson_interval(2, 3))
    assert s.mean_tokens == 60
    assert (s.strategy, s.model, s.agent, s.suite) == ("sc", "qwen-manifest", "pal", "gsm8k")
    assert s.started == "2026-01-01T00:00:00+00:00" and (s.votes, s.searches) == (1, 1)
    assert entry.live  # manifest, no report yet
    old = time.time() - 3600
    for name in ("trajectories.jsonl", "results.jsonl", "self_consistency.jsonl", "search.jsonl", "run.json"):
        os.utime(entry.path / name, (old, old))
    entry.refresh()
    assert not entry.live  # no report, but nothing written for an hour: a killed eval
    os.utime(entry.path / "results.jsonl")
    entry.refresh()
    assert entry.live  # it was resumed
    (entry.path / "report.html").write_text("<html></html>")
    os.utime(entry.path / "results.jsonl", (old, old))
    entry.refresh()
    assert entry.has_report and not entry.live


def test_runs_folder_summary_inferred_from_records(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    _append(folder / "trajectories.jsonl", _traj("a", score=0.5, strategy="best_of_n"),
            _traj("b", status="max_steps", strategy="best_of_n"))
    entry = RunEntry.open(folder, "plain")
    assert entry.kind == "runs" and entry.manifest == {} and entry.manifest_error is None
    a, b = entry.rows
    assert (a.id, a.success, a.score, a.steps, a.trajectory_ids, a.status) == ("a", None, 0.5, 2, ["a"], "solved")
    assert b.status == "max_steps" and b.failure == ""
    s = entry.summary()
    assert (s.episodes, s.successes, s.success_rate, s.ci_low) == (2, 0, None, None)
    assert (s.strategy, s.model, s.agent, s.suite) == ("best_of_n", "qwen-test", "react", "")
    assert s.started == "2026-01-02T03:04:05+00:00"
    assert entry.live  # written just now
    old = time.time() - 3600
    os.utime(folder / "trajectories.jsonl", (old, old))
    entry.refresh()
    assert not entry.live


def test_problem_rows_torn_then_completed_and_invalid_record(tmp_path: Path) -> None:
    folder = _eval_folder(tmp_path / "ev")
    bad = json.loads(_result("e5", True, []).model_dump_json())
    bad["success"] = "maybe"
    _append(folder / "results.jsonl", "not json at all", json.dumps(bad))
    tail = _result("e6", False, ["t3"]).model_dump_json()
    with open(folder / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(tail[:30])
    entry = RunEntry.open(folder, "ev")
    rows = entry.rows
    assert [r.line for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[3].status == "malformed" and rows[3].problem.startswith("line 4: malformed (not JSON")
    assert rows[4].status == "malformed" and rows[4].id == "e5"
    assert rows[4].problem.startswith("line 5: not a valid EpisodeResult: success")
    assert rows[5].status == "torn" and rows[5].problem.startswith("line 6: torn (no newline, not JSON")
    s = entry.summary()
    assert (s.episodes, s.problems) == (3, 3)
    with open(folder / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write(tail[30:] + "\n")
    entry.refresh()
    assert entry.rows[5].problem is None and entry.rows[5].id == "e6" and len(entry.rows) == 6
    assert entry.summary().problems == 2


def test_refresh_builds_only_new_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _eval_folder(tmp_path / "ev")
    built: list[int] = []
    real = catalog_mod.result_row
    monkeypatch.setattr(catalog_mod, "result_row", lambda ref, obj, steps: (built.append(ref.number),
                                                                            real(ref, obj, steps))[1])
    entry = RunEntry.open(folder, "ev")
    assert built == [1, 2, 3]
    entry.refresh()
    assert built == [1, 2, 3]  # nothing new, nothing parsed
    _append(folder / "trajectories.jsonl", _traj("t4", steps=7))
    _append(folder / "results.jsonl", _result("e4", True, ["t4"]))
    read_before = entry.results.bytes_read
    entry.refresh()
    assert built == [1, 2, 3, 4]
    assert entry.results.bytes_read - read_before == len(_result("e4", True, ["t4"]).model_dump_json()) + 1
    assert entry.rows[-1].id == "e4" and entry.rows[-1].steps == 7 and entry.trajectory_line("t4") == 4
    assert [r.id for r in entry.rows] == ["e1", "e2", "e3", "e4"]


def test_replaced_results_file_rebuilds_rows(tmp_path: Path) -> None:
    folder = _eval_folder(tmp_path / "ev")
    entry = RunEntry.open(folder, "ev")
    tmp = folder / "results.tmp"
    _append(tmp, _result("z1", False, []))
    os.replace(tmp, folder / "results.jsonl")
    entry.refresh()
    assert [r.id for r in entry.rows] == ["z1"]


def test_broken_manifest(tmp_path: Path) -> None:
    folder = _eval_folder(tmp_path / "ev")
    (folder / "run.json").write_text('{"suite": "gsm8k", ', encoding="utf-8")
    entry = RunEntry.open(folder, "ev")
    assert entry.manifest == {} and entry.manifest_error and entry.manifest_error.startswith("run.json:")
    assert entry.kind == "eval" and len(entry.rows) == 3
    s = entry.summary()
    assert (s.strategy, s.model, s.agent, s.suite) == ("sc", "qwen-test", "react", "gsm8k")  # from the records
    (folder / "run.json").write_text("[1, 2]", encoding="utf-8")
    entry.refresh()
    assert entry.manifest_error == "run.json: not a JSON object"
    _manifest(folder, strategy="beam")
    entry.refresh()
    assert entry.manifest_error is None and entry.summary().strategy == "beam"


def test_catalog_discovers_nested_runs_and_new_folders(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _eval_folder(root / "eval" / "gsm8k-1")
    (root / "chat").mkdir(parents=True)
    _append(root / "chat" / "trajectories.jsonl", _traj("c1"))
    (root / ".hidden" / "x").mkdir(parents=True)  # hidden folders are not searched
    _append(root / ".hidden" / "x" / "trajectories.jsonl", _traj("h"))
    (root / "empty").mkdir()
    cat = Catalog([root])
    cat.refresh()
    assert [e.name for e in cat.runs()] == ["chat", "eval/gsm8k-1"]
    entry = cat.runs()[1]
    assert cat.get(entry.key) is entry and cat.get("0" * 12) is None
    assert [e.kind for e in cat.runs()] == ["runs", "eval"]
    _append(root / "chat" / "trajectories.jsonl", _traj("c2"))
    (root / "eval" / "gsm8k-2").mkdir()
    _manifest(root / "eval" / "gsm8k-2")  # an eval that has started: no result yet
    cat.refresh()
    assert [e.name for e in cat.runs()] == ["chat", "eval/gsm8k-1", "eval/gsm8k-2"]
    assert cat.get(entry.key) is entry  # the same entry, refreshed
    assert [r.id for r in cat.runs()[0].rows] == ["c1", "c2"]
    fresh = cat.runs()[2]
    assert fresh.kind == "eval" and fresh.rows == [] and fresh.live
    assert fresh.summary().success_rate is None
    _append(root / "eval" / "gsm8k-2" / "trajectories.jsonl", _traj("n1"))
    _append(root / "eval" / "gsm8k-2" / "results.jsonl", _result("n1", True, ["n1"]))  # files that appear later
    cat.refresh()
    assert cat.get(fresh.key) is fresh and [r.id for r in fresh.rows] == ["n1"] and fresh.rows[0].steps == 2
    assert fresh.summary().success_rate == 1.0
    (root / "chat" / "trajectories.jsonl").unlink()  # a run folder that went away
    cat.refresh()
    assert [e.name for e in cat.runs()] == ["eval/gsm8k-1", "eval/gsm8k-2"]


def test_catalog_root_is_a_run_folder(tmp_path: Path) -> None:
    folder = _eval_folder(tmp_path / "myrun")
    cat = Catalog([folder])
    cat.refresh()
    assert [e.name for e in cat.runs()] == ["myrun"]


def test_catalog_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        Catalog([tmp_path / "nope"])


def test_runs_folder_becomes_an_eval_when_results_appear(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    folder.mkdir()
    _append(folder / "trajectories.jsonl", _traj("t1"), _traj("t2"))
    entry = RunEntry.open(folder, "r")
    assert entry.kind == "runs" and [r.id for r in entry.rows] == ["t1", "t2"]
    _append(folder / "results.jsonl", _result("e1", False, ["t1"]))
    entry.refresh()
    assert entry.kind == "eval" and [r.id for r in entry.rows] == ["e1"] and entry.trajectory_line("t2") == 2


def test_catalog_refresh_while_files_grow(tmp_path: Path) -> None:
    folder = _eval_folder(tmp_path / "ev")
    cat = Catalog([tmp_path])
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                cat.refresh()
                for entry in cat.runs():
                    entry.summary()
                    assert [r.line for r in entry.rows] == sorted(r.line for r in entry.rows)
            except BaseException as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(100):
        line = _result(f"x{i}", i % 2 == 0, []).model_dump_json() + "\n"
        with open(folder / "results.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line[:20])
            fh.flush()
            fh.write(line[20:])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    cat.refresh()
    rows = cat.runs()[0].rows
    assert len(rows) == 103 and all(r.problem is None for r in rows) and rows[-1].id == "x99"
