"""viewer.compare: two runs' episodes paired and classified."""

from __future__ import annotations

from pathlib import Path

from ponder.core.records import Trajectory
from ponder.envs.base import EpisodeResult
from ponder.viewer.catalog import RunEntry
from ponder.viewer.compare import CHANGES, compare_runs


def _eval(folder: Path, outcomes: dict[str, bool], extra_lines: tuple[str, ...] = ()) -> RunEntry:
    folder.mkdir(parents=True)
    with open(folder / "results.jsonl", "w", encoding="utf-8") as fh:
        for eid, ok in outcomes.items():
            fh.write(EpisodeResult(episode_id=eid, suite="qa", task=f"task {eid}", success=ok, status="solved",
                                   failure="" if ok else "wrong_answer").model_dump_json() + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return RunEntry.open(folder, folder.name)


def test_eval_pairs_and_counts(tmp_path: Path) -> None:
    a = _eval(tmp_path / "a", {"e1": False, "e2": True, "e3": True, "e4": False, "e5": True},
              extra_lines=('{"episode_id": "e6", "torn',))
    b = _eval(tmp_path / "b", {"e2": False, "e1": True, "e3": True, "e4": False, "e7": False},
              extra_lines=("not json",))
    pairs, counts = compare_runs(a, b)
    assert [(p.id, p.change) for p in pairs] == [
        ("e1", "fixed"), ("e2", "broken"), ("e3", "same_success"), ("e4", "same_failure"), ("e5", "only_a"),
        ("e7", "only_b")]  # bad lines left out; A's order, then B's extras
    assert counts == {"fixed": 1, "broken": 1, "same_success": 1, "same_failure": 1, "only_a": 1, "only_b": 1}
    assert list(counts) == list(CHANGES)
    e5, e7 = pairs[4], pairs[5]
    assert e5.b is None and e5.a is not None and e5.task == "task e5"
    assert e7.a is None and e7.b is not None and e7.task == "task e7"
    assert pairs[0].a.success is False and pairs[0].b.success is True


def test_same_run_is_all_same(tmp_path: Path) -> None:
    a = _eval(tmp_path / "a", {"e1": True, "e2": False})
    pairs, counts = compare_runs(a, a)
    assert [p.change for p in pairs] == ["same_success", "same_failure"]
    assert counts["fixed"] == counts["broken"] == counts["only_a"] == counts["only_b"] == 0


def test_runs_folders_pair_by_task_and_solved_counts_as_success(tmp_path: Path) -> None:
    def runs(name: str, statuses: dict[str, str]) -> RunEntry:
        folder = tmp_path / name
        folder.mkdir()
        with open(folder / "trajectories.jsonl", "w", encoding="utf-8") as fh:
            for task, status in statuses.items():
                fh.write(Trajectory(task=task, agent="react", model="m", status=status).model_dump_json() + "\n")
        return RunEntry.open(folder, name)

    a = runs("ra", {"q1": "solved", "q2": "max_steps", "q3": "solved"})
    b = runs("rb", {"q1": "error", "q2": "solved", "q4": "solved"})
    pairs, counts = compare_runs(a, b)
    assert [(p.id, p.change) for p in pairs] == [("q1", "broken"), ("q2", "fixed"), ("q3", "only_a"),
                                                 ("q4", "only_b")]
    assert counts["same_success"] == 0 and counts["broken"] == 1
