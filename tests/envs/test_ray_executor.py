"""``run_eval_ray`` / ``ponder eval --executor ray`` on one local Ray instance shared by the module.

The two-node cluster runs (a killed node, a killed driver) live in ``test_ray_cluster.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import ConfigError, MissingExtraError
from ponder.core.io import append_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import Episode, EpisodeResult, EvalContext
from ponder.envs.context import EvalOptions
from ponder.envs.ray_options import RayOptions
from ponder.envs.runner import RESULTS_FILE, run_eval

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # Ray workers get it through PYTHONPATH (the fixture's runtime_env)
from _fake_suite import FakeSuite, make_episodes  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for the module; ``run_eval_ray`` uses an initialized Ray as it is."""
    import ray

    temp = tempfile.mkdtemp(prefix="rx", dir="/tmp")  # short: Ray's socket paths are limited to 107 chars
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80_000_000, _temp_dir=temp,
             logging_level=logging.ERROR, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(HERE), "RAY_USAGE_STATS_ENABLED": "0"}})
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def settings(tmp_path, data_dir):
    return load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


def opts(out: Path, **kw) -> EvalOptions:
    return EvalOptions(**{"suite": "fake", "policy": "walkthrough", "out_dir": out, **kw})


def records(out: Path) -> list[EpisodeResult]:
    return [EpisodeResult.model_validate_json(line) for line in (out / RESULTS_FILE).read_text().splitlines()]


def key(results: list[EpisodeResult]) -> list[tuple]:
    return [(r.episode_id, r.success, r.score, r.failure, r.metadata.get("index")) for r in results]


def run_ray(suite, options, settings, **kw):
    from ponder.envs.ray_executor import run_eval_ray

    ray_opts = RayOptions(**{k: kw.pop(k) for k in ("shards", "max_retries") if k in kw})
    return run_eval_ray(suite, options, settings, ray_opts, quiet=True, **kw)


@pytest.mark.slow
def test_fake_suite_same_ids_and_scores_as_run_eval(ray_local, tmp_path, settings):
    eps = make_episodes(9)
    eps[4].metadata["raise"] = True  # a bug in one episode is its own error record, as locally
    local = run_eval(FakeSuite(), opts(tmp_path / "local", workers=2), settings, episodes=eps, quiet=True)
    run = run_ray(FakeSuite(), opts(tmp_path / "ray"), settings, episodes=eps, shards=4)
    assert key(run.results) == key(local.results) and run.new == 9
    same = ("n", "successes", "success_rate", "score", "tokens", "failures")
    assert run.summary.model_dump(include=set(same)) == local.summary.model_dump(include=set(same))
    assert run.results[4].failure == "error"
    on_disk = records(tmp_path / "ray")
    assert sorted(key(on_disk)) == sorted(key(local.results))  # one line per episode, arrival order
    assert {r.metadata["shard"] for r in on_disk} == {0, 1, 2, 3} and all(len(r.metadata["node"]) == 8 for r in on_disk)
    start = json.loads((tmp_path / "ray" / "run.json").read_text())["starts"][0]
    assert start["executor"] == "ray" and start["shards"] == 4 and start["nodes"] == 1
    shards = [json.loads(line) for line in (tmp_path / "ray" / "ray_shards.jsonl").read_text().splitlines()]
    assert sum(s.get("episodes", 0) for s in shards) == 9 and shards[-1]["run"]["records"] == 9
    assert (tmp_path / "ray" / "report.html").is_file()


@pytest.mark.slow
def test_scripted_gsm8k_same_as_run_eval(ray_local, tmp_path, settings):
    from ponder.envs.registry import get_suite

    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps("Final Answer: 18") + "\n" for _ in range(20)))
    model_settings = settings.model_copy(update={"model": f"scripted:{script}"})
    options = {"suite": "gsm8k", "limit": 5}
    local = run_eval(get_suite("gsm8k"), EvalOptions(**options, out_dir=tmp_path / "local"), model_settings, quiet=True)
    run = run_ray(get_suite("gsm8k"), EvalOptions(**options, out_dir=tmp_path / "ray"), model_settings, shards=3)
    assert key(run.results) == key(local.results) and [r.success for r in run.results] == [True] + [False] * 4
    trajectories = (tmp_path / "ray" / "trajectories.jsonl").read_text().splitlines()
    ids = {json.loads(line)["id"] for line in trajectories}
    assert len(trajectories) == 5 and ids == {t for r in run.results for t in r.trajectory_ids}


@pytest.mark.slow
def test_resume_plays_only_the_rest_once(ray_local, tmp_path, settings):
    eps = make_episodes(8)
    out = tmp_path / "run"
    run_eval(FakeSuite(), opts(out), settings, episodes=eps[:3], quiet=True, report=False)  # a run cut short
    first = (out / RESULTS_FILE).read_text()
    run = run_ray(FakeSuite(), opts(out, resume=True), settings, episodes=eps, shards=2)
    assert run.new == 5 and [r.episode_id for r in run.results] == [e.id for e in eps]
    text = (out / RESULTS_FILE).read_text()
    assert text.startswith(first)
    assert sorted(r.episode_id for r in records(out)) == [e.id for e in eps]  # each exactly once
    again = run_ray(FakeSuite(), opts(out, resume=True), settings, episodes=eps)
    assert again.new == 0 and (out / RESULTS_FILE).read_text() == text
    assert json.loads((out / "run.json").read_text())["starts"][-1]["shards"] == 0  # nothing left: Ray not started
    with pytest.raises(ConfigError, match="already exists; pass --resume"):
        run_ray(FakeSuite(), opts(out), settings, episodes=eps)


@dataclass
class TrajectorySuite(FakeSuite):
    """Each episode appends one named trajectory and a search-tree line; ``e00`` also an unnamed trajectory."""

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        result = super().run_episode(episode, ctx)
        traj = Trajectory(task=episode.task, agent="react", model="none", final_answer=episode.id)
        path = Path(ctx.out_dir) / "trajectories.jsonl"
        append_jsonl(path, traj)
        if episode.id == "e00":
            append_jsonl(path, Trajectory(task="loose", agent="react", model="none"))
        with open(Path(ctx.out_dir) / "search.jsonl", "a") as fh:
            fh.write(json.dumps({"episode": episode.id}) + "\n")
        result.trajectory_ids = [traj.id]
        return result


@pytest.mark.slow
def test_trajectories_arrive_with_their_records(ray_local, tmp_path, settings):
    run = run_ray(TrajectorySuite(n=5), opts(tmp_path / "run", workers=2), settings, shards=2)
    lines = [json.loads(line) for line in (tmp_path / "run" / "trajectories.jsonl").read_text().splitlines()]
    by_id = {t["id"]: t for t in lines}
    assert [r.failure for r in run.results] == ["", "wrong_answer"] * 2 + [""]
    assert len(lines) == 6 and sum(t["task"] == "loose" for t in lines) == 1
    assert all(by_id[r.trajectory_ids[0]]["final_answer"] == r.episode_id for r in run.results)
    trees = [json.loads(line)["episode"] for line in (tmp_path / "run" / "search.jsonl").read_text().splitlines()]
    assert sorted(trees) == [r.episode_id for r in run.results]  # other run files are streamed too


@pytest.mark.slow
def test_episode_that_kills_its_worker_becomes_env_error(ray_local, tmp_path, settings):
    eps = make_episodes(6)
    eps[2].metadata["exit"] = True  # os._exit in a thread of the shard: the whole Ray worker dies
    run = run_ray(FakeSuite(), opts(tmp_path / "run", workers=2), settings, episodes=eps, shards=2, max_retries=1)
    run_id = json.loads((tmp_path / "run" / "ray_shards.jsonl").read_text().splitlines()[-1])["run"]["run_id"]
    got = records(tmp_path / "run")
    assert sorted(r.episode_id for r in got) == [e.id for e in eps]  # every episode exactly once
    dead = run.results[2]
    assert dead.failure == "env_error" and "died 2 times" in (dead.error or "") and dead.metadata["index"] == 2
    assert [r.success for r in run.results if r.episode_id != "e02"] == [True, False, False, True, False]
    assert not list(Path(tempfile.gettempdir()).glob(f"ponder-ray-{run_id}-*")), "killed shards' directories are left"


@pytest.mark.slow
def test_config_error_in_a_shard_stops_the_run_with_its_message(ray_local, tmp_path, settings):
    eps = make_episodes(4)
    eps[1].metadata["config"] = True
    with pytest.raises(ConfigError) as info:
        run_ray(FakeSuite(), opts(tmp_path / "run"), settings, episodes=eps, shards=2)
    assert str(info.value) == "fake configuration problem"


@pytest.mark.slow
def test_cli_eval_gsm8k_on_ray(ray_local, tmp_path, capsys):
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps("Final Answer: 18") + "\n" for _ in range(10)))
    out = tmp_path / "run"
    rc = main(["eval", "gsm8k", "--limit", "3", "-m", f"scripted:{script}", "--executor", "ray", "--shards", "2",
               "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "3 episodes played now, 3 in the run" in captured.out and "success rate" in captured.out
    assert "nodes " in captured.err  # per-node counts in the plain progress lines
    assert sorted(r.episode_id for r in records(out)) == ["gsm8k-test-0000", "gsm8k-test-0001", "gsm8k-test-0002"]


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_local_ray(tmp_path):
    """A fresh process: ``ray.init(address="local")`` for the run, no Ray log lines on the terminal."""
    script = tmp_path / "script.jsonl"
    script.write_text("".join(json.dumps("Final Answer: 18") + "\n" for _ in range(4)))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "ponder.cli", "eval", "gsm8k", "--limit", "2", "-m",
                           f"scripted:{script}", "--executor", "ray", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 episodes played now" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr
    assert len(records(out)) == 2


def test_missing_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    from ponder.envs.ray_cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ponder\[ray\]'"):
        import_ray()
    rc = main(["eval", "gsm8k", "--limit", "1", "--policy", "gold", "--executor", "ray", "--out", str(tmp_path / "o")])
    assert rc == 2 and "ponder eval --executor ray needs the 'ray' package" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "adaptive", "--budget-total", "1000t"], "--budget-total (one budget for the whole suite)"),
    (["--memory", "reflexion"], "needs a shared memory store (memory_url"),
])
def test_bad_combinations_exit_2(tmp_path, capsys, args, message):
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps("Final Answer: 1") + "\n")
    rc = main(["eval", "gsm8k", "--limit", "1", "-m", f"scripted:{script}", "--executor", "ray",
               "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_shard_resources_cpus_per_worker_and_a_gpu_for_a_local_gpu_model(settings):
    from ponder.envs.ray_cluster import shard_resources

    gpu = settings.model_copy(update={"model": "transformers:/m", "device": "cuda:0"})
    local = settings.model_copy(update={"model": "embedded"})
    assert shard_resources(FakeSuite(), opts(Path("o"), workers=3, policy="agent"), local).options() == {
        "num_cpus": 3.0}  # threads computing with the shard's own model: a CPU each
    assert shard_resources(FakeSuite(needs_process=True), opts(Path("o"), workers=3), settings).num_cpus == 3.0
    served = settings.model_copy(update={"model": "openai:m@http://h:8000/v1"})
    assert shard_resources(FakeSuite(), opts(Path("o"), workers=32, policy="agent"), served).num_cpus == 1.0
    assert shard_resources(FakeSuite(), opts(Path("o"), workers=3), settings).num_cpus == 1.0  # harness threads
    assert shard_resources(FakeSuite(), opts(Path("o"), policy="agent"), gpu).options() == {"num_cpus": 1.0,
                                                                                           "num_gpus": 1.0}
    assert shard_resources(FakeSuite(), opts(Path("o")), gpu).num_gpus == 0  # a harness policy loads no model
    served = gpu.model_copy(update={"model": "openai:m@http://h:8000/v1"})
    assert shard_resources(FakeSuite(), opts(Path("o"), policy="agent"), served).num_gpus == 0


def test_slots_count_what_the_live_nodes_hold_and_refuse_a_shard_no_node_fits():
    from types import SimpleNamespace

    from ponder.envs.ray_cluster import ShardResources, slots

    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}}, {"Alive": True, "Resources": {"CPU": 3.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}}]
    fake_ray = SimpleNamespace(nodes=lambda: nodes)
    assert slots(fake_ray, ShardResources(num_cpus=2, num_gpus=0)) == 5
    assert slots(fake_ray, ShardResources(num_cpus=2, num_gpus=1)) == 1
    with pytest.raises(ConfigError, match="no Ray node has 16 CPUs free for one shard"):
        slots(fake_ray, ShardResources(num_cpus=16, num_gpus=0))


@pytest.mark.slow
def test_default_sharding_one_shard_per_slot_for_process_suites_several_for_thread_suites(ray_local, tmp_path,
                                                                                          settings):
    eps = make_episodes(12)
    threads = run_ray(FakeSuite(), opts(tmp_path / "threads"), settings, episodes=eps)
    procs = run_ray(FakeSuite(needs_process=True), opts(tmp_path / "procs"), settings, episodes=eps)
    assert threads.new == procs.new == 12
    starts = {name: json.loads((tmp_path / name / "run.json").read_text())["starts"][0]
              for name in ("threads", "procs")}
    assert starts["threads"]["slots"] == starts["procs"]["slots"] == 2
    assert starts["threads"]["shards"] == 8  # 4 per slot: stragglers matter less when a shard costs milliseconds
    assert starts["procs"]["shards"] == 2  # each shard spawns its own process pool (seconds): one per slot
