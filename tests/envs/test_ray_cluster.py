"""``ponder eval --executor ray`` on a real two-node Ray cluster (``ray_two_nodes``: a head and a worker node, each
its own ``ray start --block`` process group on this machine), always through the real CLI in a subprocess.

Checked: a scripted-model suite and TextWorld give the same ids and scores as the single-machine runner, with
work on both nodes; ``kill -9`` of the worker node mid-run loses and duplicates nothing (its shards are replayed
on the head); ``kill -9`` of the driver, then ``--resume``; Ctrl-C on the driver leaves a resumable run.
The kill tests play :func:`ray_cluster.marked_suite` (slow fake episodes that mark where they started).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_cluster import LAUNCHER, RayCluster

pytestmark = pytest.mark.slow  # a real two-node Ray cluster (~15 s to start) and several `ponder eval` processes

RUN_TIMEOUT = 150  # seconds for one `ponder eval` (a hang detector, not a speed limit)


def _default_sigint() -> None:
    """In the child: Ctrl-C works even where this test runs with SIGINT ignored (a shell's background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_eval(cluster: RayCluster, argv: list[str], **env: str) -> subprocess.Popen[str]:
    """``ponder eval ARGV`` (``argv[0]`` ``rayslow``: the marked fake suite) in a process group of its own."""
    code = ["-c", LAUNCHER] if argv[0] == "rayslow" else ["-m", "ponder.cli"]
    return subprocess.Popen([sys.executable, *code, "eval", *argv], env={**cluster.env, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_default_sigint)  # noqa: PLW1509 - a test's child, no threads to race


def run_eval(cluster: RayCluster, argv: list[str], **env: str) -> tuple[str, str]:
    """Run ``ponder eval ARGV`` to the end; its stdout and stderr (it must succeed)."""
    proc = start_eval(cluster, argv, **env)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    assert proc.returncode == 0, f"ponder eval {argv} failed (rc {proc.returncode}):\n{err[-4000:]}\n{cluster.tails()}"
    return out, err


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill a driver still running (its whole process group) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def on_ray(cluster: RayCluster, *args: str) -> list[str]:
    return [*args, "--executor", "ray", "--ray-address", cluster.address]


def records(out: Path) -> list[dict]:
    """The complete lines of ``results.jsonl`` (a torn last line left by a killed driver is not a record)."""
    path = out / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
    return [json.loads(line) for line in lines if line.endswith("\n")]  # a line is written whole, newline last


def outcome(out: Path) -> dict[str, tuple]:
    """What must not depend on where an episode ran: per id, success, score, status, failure, answer, steps."""
    return {r["episode_id"]: (r["success"], r["score"], r["status"], r["failure"], r["prediction"], r["env_steps"])
            for r in records(out)}


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[str], what: str, timeout: float = 90) -> None:
    """Poll ``check`` until true; fail (with the driver's stderr) when the driver exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"the driver ended before {what}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"no {what} in {timeout:.0f} s: {proc.communicate()[1][-3000:]}")
        time.sleep(0.05)


def assert_once_each(out: Path, n: int) -> list[dict]:
    """Every episode ``e00`` .. of the marked suite exactly once; the records."""
    recs = records(out)
    ids = [r["episode_id"] for r in recs]
    assert sorted(ids) == [f"e{i:02d}" for i in range(n)], f"not exactly one record per episode: {sorted(ids)}"
    return recs


def assert_no_shard_left(cluster: RayCluster, timeout: float = 20) -> None:
    """No shard plays on once its driver is gone (Ray kills a dead driver's tasks; Ctrl-C cancels them)."""
    deadline = time.monotonic() + timeout
    while cluster.running("play_shard") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not cluster.running("play_shard"), "shards still running without their driver"


def test_scripted_suite_on_two_nodes_matches_the_local_runner(ray_two_nodes, tmp_path):
    cluster = ray_two_nodes
    data = tmp_path / "q.jsonl"  # golds 18 and 7 alternate: with a model that always says 18, half are solved
    data.write_text("".join(json.dumps({"id": f"q{i:02d}", "question": f"What is {i}?", "answer": "18" if i % 2
                                        else "7"}) + "\n" for i in range(10)))
    script = tmp_path / "script.jsonl"  # every reply the same: a shard's own model copy gives the same answers
    script.write_text((json.dumps("Thought: I now know the final answer\nFinal Answer: 18") + "\n") * 30)
    common = ["gsm8k", "--data", str(data), "-m", f"scripted:{script}", "--seed", "3", "-q"]
    run_eval(cluster, [*common, "--out", str(tmp_path / "local")])
    stdout, _ = run_eval(cluster, on_ray(cluster, *common, "--out", str(tmp_path / "ray"), "--shards", "10"))
    assert "10 episodes played now" in stdout
    local, distributed = outcome(tmp_path / "local"), outcome(tmp_path / "ray")
    assert len(local) == 10 and distributed == local
    assert sum(s for s, *_ in local.values()) == 5
    nodes = {r["metadata"]["node"] for r in records(tmp_path / "ray")}
    assert nodes == {n.short_id for n in cluster.nodes}, "the work did not run on both nodes"
    manifest = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert manifest["starts"][0]["executor"] == "ray" and manifest["starts"][0]["nodes"] == 2


def test_textworld_on_two_nodes_matches_the_local_runner(ray_two_nodes, cache_dir, tmp_path):
    cluster = ray_two_nodes
    common = ["textworld", "--data", "small", "--policy", "random", "--seed", "1", "-q"]
    env = {"PONDER_CACHE_DIR": str(cache_dir)}
    run_eval(cluster, [*common, "--out", str(tmp_path / "local")], **env)
    run_eval(cluster, on_ray(cluster, *common, "--out", str(tmp_path / "ray"), "--shards", "3"), **env)
    local, distributed = outcome(tmp_path / "local"), outcome(tmp_path / "ray")
    assert sorted(local) == ["t1-put-s1", "t2-puttwo-s1", "t3-tw-cooking-s1"]
    assert distributed == local
    assert {r["metadata"]["node"] for r in records(tmp_path / "ray")} == {n.short_id for n in cluster.nodes}


def test_killed_driver_then_resume_keeps_every_record_once(ray_two_nodes, tmp_path):
    cluster, out = ray_two_nodes, tmp_path / "run"
    argv = on_ray(cluster, "rayslow", "--policy", "walkthrough", "--out", str(out))
    proc = start_eval(cluster, argv, RAY_TEST_SLEEP="0.5")
    wait_for(lambda: len(records(out)) >= 3, proc, "three records")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert_no_shard_left(cluster)
    before = (out / "results.jsonl").read_text()
    kept = {r["episode_id"]: r for r in records(out)}
    assert 3 <= len(kept) < 12, "the kill did not land mid-run"

    stdout, stderr = run_eval(cluster, [*argv, "--resume"], RAY_TEST_SLEEP="0.5")
    recs = assert_once_each(out, 12)
    assert (out / "results.jsonl").read_text().startswith(before.rsplit("}\n", 1)[0])  # earlier lines untouched
    assert all(kept[r["episode_id"]] == r for r in recs if r["episode_id"] in kept)
    assert f"{12 - len(kept)} episodes played now, 12 in the run" in stdout, stderr[-2000:]


def test_ctrl_c_on_the_driver_leaves_a_resumable_run(ray_two_nodes, tmp_path):
    cluster, out = ray_two_nodes, tmp_path / "run"
    argv = on_ray(cluster, "rayslow", "--policy", "walkthrough", "--out", str(out))
    proc = start_eval(cluster, argv, RAY_TEST_SLEEP="0.5")
    wait_for(lambda: len(records(out)) >= 3, proc, "three records")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 130, stderr[-3000:]
    assert time.monotonic() - sent < 15, "Ctrl-C did not stop the driver promptly"
    assert "--resume" in stderr
    assert_no_shard_left(cluster)
    interrupted = len(records(out))
    assert interrupted < 12, "the interrupt did not land mid-run"

    stdout, _ = run_eval(cluster, [*argv, "--resume"], RAY_TEST_SLEEP="0.5")
    assert_once_each(out, 12)
    assert f"{12 - interrupted} episodes played now, 12 in the run" in stdout


def test_killed_worker_node_loses_and_duplicates_nothing(ray_two_nodes, tmp_path):
    """Runs last in the module: it kills the worker node (and starts a new one for whoever comes after)."""
    cluster, out, marks = ray_two_nodes, tmp_path / "run", tmp_path / "marks"
    marks.mkdir()
    worker = cluster.nodes[-1]
    argv = on_ray(cluster, "rayslow", "--policy", "walkthrough", "--out", str(out))
    proc = start_eval(cluster, argv, RAY_TEST_MARKS=str(marks), RAY_TEST_SLEEP="1.0")

    def worker_busy() -> bool:  # a record from the worker is in, and an episode started there is not
        done = {r["episode_id"]: r["metadata"]["node"] for r in records(out)}
        started = {p.stem for p in marks.glob(f"*.{worker.short_id}")}
        return worker.short_id in done.values() and bool(started - set(done))

    try:
        wait_for(worker_busy, proc, "a record from the worker node while it plays another episode")
        worker.kill()
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, stderr[-4000:]
    finally:
        stop(proc)
        cluster.nodes.remove(worker)
        cluster.add_worker("worker-again")
    recs = assert_once_each(out, 12)
    node = {r["episode_id"]: r["metadata"]["node"] for r in recs}
    started_there = {p.stem for p in marks.glob(f"*.{worker.short_id}")}
    replayed = {i for i in started_there if node[i] != worker.short_id}  # in flight when the node died
    assert replayed, f"no episode was in flight on the killed node: {node}"
    assert all(node[i] == cluster.head.short_id for i in replayed), node
    assert {r["status"] for r in recs} == {"solved"}  # none became an env_error: the head played them
    assert "12 episodes played now, 12 in the run" in stdout
