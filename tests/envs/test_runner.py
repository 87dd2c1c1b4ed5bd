"""The evaluation runner on a fake suite: order, workers, timeouts, errors, resume, records, --data rows."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, DataError
from ponder.core.settings import load_settings
from ponder.envs.base import EpisodeResult
from ponder.envs.context import EvalOptions
from ponder.envs.runner import RESULTS_FILE, load_done, repair_tail, run_eval

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # spawned workers inherit sys.path, so they can import _fake_suite too
from _fake_suite import FakeSuite, make_episodes  # noqa: E402


@pytest.fixture
def settings(tmp_path):
    return load_settings(out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


def opts(tmp_path: Path, **kw) -> EvalOptions:
    base = {"suite": "fake", "policy": "walkthrough", "out_dir": tmp_path / "run"}
    return EvalOptions(**{**base, **kw})


def records(out: Path) -> list[EpisodeResult]:
    return [EpisodeResult.model_validate_json(line) for line in (out / RESULTS_FILE).read_text().splitlines()]


def test_results_in_episode_order_and_valid_records(tmp_path, settings):
    eps = make_episodes(8)
    for i, ep in enumerate(eps):  # later episodes finish first
        ep.metadata["sleep"] = 0.02 * (8 - i)
    run = run_eval(FakeSuite(), opts(tmp_path, workers=4), settings, episodes=eps, quiet=True)
    assert [r.episode_id for r in run.results] == [e.id for e in eps]
    recs = records(tmp_path / "run")
    assert sorted(r.episode_id for r in recs) == [e.id for e in eps]
    for r in recs:
        assert r.policy == "walkthrough" and r.policy_kind == "harness"
        assert r.metadata["index"] == int(r.episode_id[1:]) and r.metadata["episode_seconds"] >= 0
        assert r.usage.total_tokens == 15 and r.env_steps == 3 and r.finished
    assert run.summary.successes == 4 and run.new == 8
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert manifest["suite"] == "fake" and manifest["policy_kind"] == "harness" and manifest["episodes"] == 8
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "report.html").is_file()


@dataclass
class MeetingSuite(FakeSuite):
    """Every episode first waits at a barrier until ``parties`` episodes are running at the same time."""

    parties: int = 6
    barrier: threading.Barrier = field(init=False)

    def __post_init__(self) -> None:
        self.barrier = threading.Barrier(self.parties)

    def run_episode(self, episode, ctx):
        self.barrier.wait(timeout=60)  # BrokenBarrierError (an error result) unless all of them overlap
        return super().run_episode(episode, ctx)


@dataclass
class RecordingSuite(FakeSuite):
    """Records the ids of the episodes whose ``run_episode`` came to its end."""

    finished: set[str] = field(default_factory=set)

    def run_episode(self, episode, ctx):
        result = super().run_episode(episode, ctx)
        self.finished.add(episode.id)
        return result


def test_workers_run_in_parallel(tmp_path, settings):
    run = run_eval(MeetingSuite(), opts(tmp_path, workers=6), settings, episodes=make_episodes(6), quiet=True,
                   report=False)
    assert [r.failure for r in run.results] == ["", "wrong_answer"] * 3, [r.error for r in run.results]


def test_timeout_is_a_failure_and_the_run_goes_on(tmp_path, settings):
    eps = make_episodes(4)
    eps[1].metadata.update(sleep=30, stubborn=True)  # ignores its deadline: the runner must not wait for it
    suite = RecordingSuite()
    run = run_eval(suite, opts(tmp_path, workers=2, timeout=0.5), settings, episodes=eps, quiet=True,
                   report=False)
    assert suite.finished == {"e00", "e02", "e03"}  # the run ended while e01 was still playing
    by_id = {r.episode_id: r for r in run.results}
    assert by_id["e01"].failure == "timeout" and by_id["e01"].status == "timeout" and not by_id["e01"].success
    assert [by_id[i].success for i in ("e00", "e02")] == [True, True]
    assert len(records(tmp_path / "run")) == 4


def test_a_bug_in_an_episode_is_recorded_and_a_config_error_stops(tmp_path, settings):
    eps = make_episodes(3)
    eps[1].metadata["raise"] = True
    run = run_eval(FakeSuite(), opts(tmp_path), settings, episodes=eps, quiet=True, report=False)
    bad = run.results[1]
    assert bad.failure == "error" and "RuntimeError: fake bug" in (bad.error or "")
    eps[2].metadata["config"] = True
    with pytest.raises(ConfigError, match="fake configuration"):
        run_eval(FakeSuite(), opts(tmp_path / "b"), settings, episodes=eps, quiet=True, report=False)


@pytest.mark.slow  # process workers, a stubborn episode killed at its 1.5 s deadline
def test_process_workers_timeout_and_dead_worker(tmp_path, settings):
    eps = make_episodes(5)
    eps[1].metadata.update(sleep=60, stubborn=True)  # ignores its deadline: the worker must be killed
    eps[3].metadata["exit"] = True                   # the worker process dies
    suite = FakeSuite(needs_process=True)
    run = run_eval(suite, opts(tmp_path, workers=2, timeout=1.5), settings, episodes=eps, quiet=True,
                   report=False)
    by_id = {r.episode_id: r for r in run.results}
    assert by_id["e01"].failure == "timeout"
    assert by_id["e03"].failure == "env_error" and "died" in (by_id["e03"].error or "")
    assert by_id["e00"].success and by_id["e02"].success and by_id["e04"].success
    import os

    assert {by_id[i].metadata["pid"] for i in ("e00", "e02", "e04")} - {os.getpid()}  # not in this process
    assert len(records(tmp_path / "run")) == 5


def test_resume_skips_finished_and_repairs_a_torn_line(tmp_path, settings):
    suite = FakeSuite(n=6)
    run_eval(suite, opts(tmp_path, limit=3), settings, quiet=True, report=False)
    results = tmp_path / "run" / RESULTS_FILE
    with open(results, "a") as fh:  # a write killed midway
        fh.write('{"episode_id": "e03", "suite": "fa')
    with pytest.raises(ConfigError, match="--resume"):
        run_eval(suite, opts(tmp_path), settings, quiet=True, report=False)
    run = run_eval(suite, opts(tmp_path, resume=True), settings, quiet=True, report=False)
    assert run.new == 3 and len(run.results) == 6
    ids = [r.episode_id for r in records(tmp_path / "run")]
    assert sorted(ids) == [f"e{i:02d}" for i in range(6)]  # exactly one each, the torn one replaced
    again = run_eval(suite, opts(tmp_path, resume=True), settings, quiet=True, report=False)
    assert again.new == 0 and len(records(tmp_path / "run")) == 6
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [s["resumed_from"] for s in manifest["starts"]] == [0, 3, 6]


def test_resume_refuses_another_suite(tmp_path, settings):
    run_eval(FakeSuite(n=2), opts(tmp_path), settings, quiet=True, report=False)
    with pytest.raises(ConfigError, match="holds a run of suite 'fake'"):
        run_eval(FakeSuite(name="other", n=2), opts(tmp_path, resume=True), settings, quiet=True, report=False)


def test_load_done_and_repair_tail(tmp_path):
    path = tmp_path / "r.jsonl"
    good = EpisodeResult(episode_id="a", suite="s", task="t").model_dump_json()
    path.write_text(good + "\n" + good[:10])
    assert repair_tail(path) and path.read_text() == good + "\n"
    assert not repair_tail(path)
    assert list(load_done(path)) == ["a"]
    path.write_text(good + "\n{broken\n" + good + "\n")
    with pytest.raises(DataError, match=":2:"):
        load_done(path)
    assert load_done(tmp_path / "missing.jsonl") == {}


@pytest.mark.parametrize(("bad_options", "message"), [
    ({"policy": "solver"}, "not offered by suite 'fake'"),
    ({"policy": "walkthrough", "samples": 3}, "apply to --policy agent only"),
    ({"policy": "agent", "agent": "cot"}, "--agent must be one of: react, pal"),
    ({"policy": "agent", "memory": "lots"}, "--memory must be one of"),
    ({"policy": "agent", "vote": "loudest"}, "--vote must be one of"),
    ({"policy": "agent", "budget": "10t"}, "add --samples"),
])
def test_bad_options(tmp_path, settings, bad_options, message):
    with pytest.raises(ConfigError, match=message):
        run_eval(FakeSuite(), opts(tmp_path, **bad_options), settings, quiet=True)


def test_duplicate_episode_ids(tmp_path, settings):
    eps = make_episodes(2)
    eps[1].id = eps[0].id
    with pytest.raises(DataError, match="duplicate episode id"):
        run_eval(FakeSuite(), opts(tmp_path), settings, episodes=eps, quiet=True)


def write_rows(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("rows", "where", "what"), [
    ([{"id": "a", "question": "q", "answer": "1"}, "{not json"], ":2:", "not valid JSON"),
    ([{"id": "a", "question": "q", "answer": "1"}, "", {"id": "b", "question": "q"}], ":3:", "answer: Field required"),
    ([{"id": "a", "question": "q", "answer": "1"}, {"id": "a", "question": "r", "answer": "2"}], ":2:",
     "duplicate id 'a' (first on line 1)"),
    ([["a", "q", "1"]], ":1:", "expected a JSON object"),
    ([{"id": "a", "question": "  ", "answer": "1"}], ":1:", "question: Value error, must not be empty"),
])
def test_malformed_data_rows_name_their_line(tmp_path, settings, rows, where, what):
    from ponder.envs.registry import get_suite

    data = write_rows(tmp_path / "mine.jsonl", rows)
    with pytest.raises(DataError) as err:
        get_suite("gsm8k").episodes(settings, data)
    assert f"mine.jsonl{where}" in str(err.value) and what in str(err.value)


def test_user_data_file_in_the_shipped_schema(tmp_path, settings):
    from ponder.envs.registry import get_suite

    data = write_rows(tmp_path / "mine.jsonl", [{"id": 7, "question": "1+1?", "answer": 2, "extra": "kept"},
                                                {"id": "x", "question": "2+2?", "answer": "4"}])
    eps = get_suite("svamp").episodes(settings, data)
    assert [(e.id, e.gold) for e in eps] == [("7", "2"), ("x", "4")]
    assert eps[0].metadata["source"] == "mine.jsonl:1"
    run = run_eval(get_suite("svamp"), opts(tmp_path, suite="svamp", policy="gold", data=data), settings, quiet=True)
    assert run.summary.successes == 2


def test_rich_progress_bar_and_plain_lines(tmp_path, settings):
    import io

    from ponder.envs.progress import Progress

    for rich in (True, False):
        stream = io.StringIO()
        eps = make_episodes(4)
        display = Progress(len(eps), [], label="fake", stream=stream, rich=rich)
        run_eval(FakeSuite(), opts(tmp_path / str(rich)), settings, episodes=eps, progress=display, report=False)
        text = stream.getvalue()
        assert "success 2/4 (50.0%)" in text and "tokens 60" in text, text
        assert ("4/4" in text) if rich else ("[4/4] fake e03 FAIL wrong_answer" in text)


def test_process_worker_that_cannot_load_its_model_stops_the_run(tmp_path):
    settings = load_settings(model=f"scripted:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(ConfigError, match="scripted model file not found"):
        run_eval(FakeSuite(needs_process=True, n=2), opts(tmp_path, policy="agent"), settings, quiet=True)


def test_process_worker_that_cannot_start_stops_the_run(tmp_path, settings):
    import types

    from ponder.core.errors import PonderError

    ghost = types.ModuleType("ghost_suite_module")  # picklable here, not importable in a spawned worker
    exec("from _fake_suite import FakeSuite\nclass Ghost(FakeSuite):\n    pass\n", ghost.__dict__)
    sys.modules["ghost_suite_module"] = ghost
    try:
        with pytest.raises(PonderError, match="exited while starting"):
            run_eval(ghost.Ghost(needs_process=True, n=4), opts(tmp_path, workers=2), settings, quiet=True)
    finally:
        del sys.modules["ghost_suite_module"]
    assert not (tmp_path / "run" / RESULTS_FILE).exists()
