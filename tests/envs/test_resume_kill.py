"""``ponder eval`` killed with SIGKILL mid-run, then ``--resume``: exactly one record per episode id.

The command runs in a subprocess exactly as the console script does (``ponder.cli.main``); the only
difference is that the launcher registers the slow fake suite (30 episodes of 0.15 s) under the name
``slow`` first, so the kill lands mid-run without any model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LAUNCHER = (
    "import sys; sys.path.insert(0, {here!r}); "
    "from ponder.envs import registry; registry.SUITES['slow'] = {target!r}; "
    "from ponder.cli import main; sys.exit(main(sys.argv[1:]))"
)


pytestmark = pytest.mark.slow  # two `ponder eval` processes per test, one killed mid-run


def ponder_eval(target: str, gate: Path, *args: str) -> subprocess.Popen:
    code = LAUNCHER.format(here=str(HERE), target=target)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FAKE_SUITE_GATE": str(gate)}
    return subprocess.Popen([sys.executable, "-c", code, "eval", "slow", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


@pytest.mark.parametrize("target", ["_fake_suite:slow_suite", "_fake_suite:slow_process_suite"],
                         ids=["threads", "processes"])
def test_kill_9_then_resume_gives_one_record_per_episode(tmp_path, target):
    out = tmp_path / "run"
    results = out / "results.jsonl"
    gate = tmp_path / "gate"  # episodes e10 to e29 wait for this file: the first run cannot get past 10 results
    args = ["--policy", "walkthrough", "--workers", "2", "--out", str(out)]
    proc = ponder_eval(target, gate, *args)
    deadline = time.monotonic() + 120  # a hang detector, not a speed limit
    while len(lines(results)) < 10:  # e00-e09 finish; both workers then wait at the gate: kill mid-run
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "ten results did not appear"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = lines(results)
    assert len(before) == 10
    finished_before = {json.loads(line)["episode_id"] for line in before if line.endswith("}")}

    time.sleep(0.5)  # orphaned process workers notice the parent is gone and exit
    gate.touch()
    resumed = ponder_eval(target, gate, *args, "--resume")
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    records = [json.loads(line) for line in lines(results)]
    ids = [r["episode_id"] for r in records]
    assert len(ids) == 30 and len(set(ids)) == 30, "exactly one record per episode"
    assert sorted(ids) == [f"e{i:02d}" for i in range(30)]
    assert finished_before <= set(ids)
    assert f"resuming: {len(finished_before)}/30 episodes already finished" in stderr
    played_now = int(stdout.split(" episodes played now")[0].split()[-1])
    assert played_now == 30 - len(finished_before)
    manifest = json.loads((out / "run.json").read_text())
    assert [s["resumed_from"] for s in manifest["starts"]] == [0, len(finished_before)]
