"""TextWorld games: generation and cache, the env wrapper, the walkthrough harness check, the agent path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import DataError
from ponder.core.hashing import file_sha256
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.base import EvalContext
from ponder.envs.registry import get_suite
from ponder.envs.textworld.cache import GAME_FILE, definition_hash, games_root, read_manifest
from ponder.envs.textworld.env import GAME_OVER, TextWorldEnv, clean_feedback
from ponder.envs.textworld.spec import GameSpec, SuiteSpec, load_suite_spec
from ponder.envs.textworld.suite import TextWorldSuite, agent_max_steps
from ponder.models.scripted import ScriptedModel

pytest.importorskip("textworld")

#: game.json of the small suite's games: the same bytes on every machine (PYTHONHASHSEED=0, fixed seeds).
SMALL_DEFINITIONS: dict[str, str | None] = {
    # checked in two virtual environments at different paths (TextWorld's install path is not hashed)
    "t1-put-s1": "a7f616786dd4c0481fe5a7312b9a4ee73736d658163609d11f5f49cf66d6092a",
    "t2-puttwo-s1": "c95ccef422943d1c86da01eb5116092b207c27ab1668baa0a681ecf7fce7db7d",
    "t3-tw-cooking-s1": "5f9c9f5651d5f2de9cd8467d967c6fb5a620e7c7f754c76222929153e975e407",
}


@pytest.fixture
def suite() -> TextWorldSuite:
    return TextWorldSuite("small", gen_workers=1)


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_walkthrough_wins_every_game_of_the_small_suite(cache_dir: Path, tmp_path: Path,
                                                        suite: TextWorldSuite) -> None:
    settings = load_settings(cache_dir=cache_dir)
    episodes = suite.episodes(settings)
    assert [e.id for e in episodes] == ["t1-put-s1", "t2-puttwo-s1", "t3-tw-cooking-s1"]
    assert {e.tier for e in episodes} == {"1", "2", "3"}
    ctx = EvalContext(settings=settings, policy="walkthrough", out_dir=tmp_path)
    for episode in episodes:
        result = suite.run_episode(episode, ctx)
        assert result.success, (episode.id, result.error, result.trajectory)
        assert result.policy == "walkthrough" and result.policy_kind == "harness"
        assert result.metadata["harness_check"] is True and result.score == 1.0
        assert result.env_steps == episode.metadata["walkthrough_length"]
        assert result.trajectory is not None and result.trajectory.status == "solved"
    saved = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert len(saved) == 3 and all(t.agent == "walkthrough" for t in saved)


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_manifest_records_recipe_hashes_and_walkthrough(cache_dir: Path) -> None:
    settings = load_settings(cache_dir=cache_dir)
    for game in load_suite_spec("small").games():
        game_dir = games_root(settings) / game.key
        manifest = read_manifest(game_dir)
        assert manifest is not None
        assert (manifest.seed, manifest.generator, manifest.options) == (game.seed, game.generator, game.options)
        assert manifest.pythonhashseed == "0" and manifest.textworld == "1.7.0"
        assert manifest.game_sha256 == file_sha256(game_dir / GAME_FILE)
        assert manifest.definition_sha256 == definition_hash(game_dir / "game.json")
        assert manifest.walkthrough and manifest.max_score > 0 and manifest.objective
        assert manifest.generation_seconds > 0
        expected = SMALL_DEFINITIONS[game.id]
        if expected is not None:
            assert manifest.definition_sha256 == expected, f"{game.id} is not the game every machine generates"


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_suite_manifest_and_cache_reuse(cache_dir: Path, suite: TextWorldSuite,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.envs.textworld import cache as tw_cache

    settings = load_settings(cache_dir=cache_dir)
    monkeypatch.setattr(tw_cache, "_spawn", lambda *args: pytest.fail("a cached game was generated again"))
    episodes = suite.episodes(settings, limit=2)
    assert len(episodes) == 2
    rows = json.loads((cache_dir / "textworld" / "suites" / "small.json").read_text())["games"]
    assert [r["id"] for r in rows] == ["t1-put-s1", "t2-puttwo-s1"]
    assert {"seed", "options", "game_sha256", "definition_sha256", "walkthrough"} <= set(rows[0])


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_corrupt_game_is_detected(cache_dir: Path, tmp_path: Path) -> None:
    game = load_suite_spec("small").games()[0]
    copy = tmp_path / game.key
    copy.mkdir()
    for name in ("game.z8", "game.json", "manifest.json"):
        (copy / name).write_bytes((cache_dir / "textworld" / "games" / game.key / name).read_bytes())
    assert read_manifest(copy) is not None
    (copy / "game.z8").write_bytes(b"broken")
    assert read_manifest(copy) is None


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_invalid_action_is_answered_by_the_game(cache_dir: Path) -> None:
    game = load_suite_spec("small").games()[0]
    manifest = read_manifest(cache_dir / "textworld" / "games" / game.key)
    assert manifest is not None
    with TextWorldEnv(cache_dir / "textworld" / "games" / game.key / GAME_FILE, objective=manifest.objective) as env:
        first = env.reset()
        assert "Your task is to:" in first.observation and "$$" not in first.observation
        assert first.admissible_actions and "look" in first.admissible_actions
        step = env.step("dance wildly")
        assert step.observation == "That's not a verb I recognise." and not step.done and step.reward == 0
        step = env.step("go\nnorth")  # one command, never two
        assert not step.done and ">" not in step.observation
        shaped = [env.step(command).info["intermediate_reward"] for command in manifest.walkthrough[:-1]]
        assert shaped == [1] * len(shaped)  # every walkthrough move brings the quest closer (TextWorld's own signal)
        step = env.step(manifest.walkthrough[-1])
        assert step.done and step.info["won"] and step.reward == 1.0
        assert env.step("look").observation == GAME_OVER
        again = env.reset()  # a fresh episode
        assert again.observation == first.observation


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_agent_policy_plays_through_the_env_agent_graph(cache_dir: Path, tmp_path: Path,
                                                        suite: TextWorldSuite) -> None:
    settings = load_settings(cache_dir=cache_dir)
    episode = suite.episodes(settings, limit=1)[0]
    manifest = read_manifest(cache_dir / "textworld" / "games" / episode.metadata["key"])
    assert manifest is not None
    replies = ["think: I should find the object first.", "dance wildly", *manifest.walkthrough]
    model = ScriptedModel(replies)
    ctx = EvalContext(settings=settings, model=model, out_dir=tmp_path)
    result = suite.run_episode(episode, ctx)
    assert result.success and result.policy_kind == "agent" and result.status == "solved"
    assert result.env_steps == len(manifest.walkthrough) + 1
    assert result.trajectory is not None and result.trajectory.steps[1].observation == "That's not a verb I recognise."
    assert "Your task is to:" in model.calls[0][-1]["content"]  # the first observation, after the few-shot turns
    assert model.calls[0][1]["content"].startswith("Your task is to: put some vase")  # the textworld example


@pytest.mark.slow  # the generated small suite (~20 s, once per session)
def test_agent_step_cap(cache_dir: Path, tmp_path: Path, suite: TextWorldSuite) -> None:
    settings = load_settings(cache_dir=cache_dir)
    episode = suite.episodes(settings, limit=1)[0]
    ctx = EvalContext(settings=settings, model=ScriptedModel(["look"], repeat_last=True), out_dir=tmp_path,
                      extra={"max_steps": 3})
    result = suite.run_episode(episode, ctx)
    assert not result.success and result.failure == "max_steps" and result.env_steps == 3
    game = GameSpec.model_validate(episode.metadata["game"])
    assert agent_max_steps(game, EvalContext(settings=settings)) == game.max_steps == 15
    assert agent_max_steps(game, EvalContext(settings=load_settings(max_steps=7))) == 7


def test_suite_files_and_registry(tmp_path: Path) -> None:
    default = load_suite_spec("default")
    games = default.games()
    assert len(games) == 50 and len({g.tier for g in games}) >= 3
    assert len({g.key for g in games}) == 50
    suite = get_suite("textworld")
    assert suite.name == "textworld" and suite.policies == ("walkthrough", "random") and suite.needs_process
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "tiers": {"1": {"generator": "nope", "seeds": [1]}}}))
    with pytest.raises(DataError, match="unknown generator"):
        load_suite_spec(bad)
    with pytest.raises(DataError, match="twice"):
        SuiteSpec.model_validate({"name": "d", "tiers": {"1": [{"generator": "put", "seeds": [1]},
                                                              {"generator": "put", "seeds": [1]}]}}).games()
    with pytest.raises(DataError, match="shipped suites"):
        load_suite_spec("no-such-suite")


def test_clean_feedback() -> None:
    raw = ("\n  ___  \n | $$ |\n\nHello.\n\n\n\n>  -= Kitchen =-0/3\n"
           "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?")
    assert clean_feedback(raw) == "Hello."


@pytest.mark.integration
def test_embedded_model_plays_two_short_games(cache_dir: Path, tmp_path: Path, suite: TextWorldSuite) -> None:
    """The real embedded model, end to end: the records' validity and a behaviour floor, not the outcome.

    Measured (greedy, 4 steps of 48 tokens; the same on llama.cpp and transformers): in each game a ``think``
    turn, then an action the game carries out ("take egg from desk": "You take the egg from the desk."),
    repeated twice (refused), no malformed reply, ``max_steps``. Floor: every game reaches the environment
    with at least one action (a broken prompt format gets only malformed replies), ``error`` only as a lost game.
    """
    from ponder.envs.base import EpisodeResult
    from ponder.models.spec import load_model

    settings = load_settings(cache_dir=cache_dir, max_tokens=48, llamacpp_threads=1)
    ctx = EvalContext(settings=settings, model=load_model("embedded", settings), out_dir=tmp_path,
                      extra={"max_steps": 4})
    results = [suite.run_episode(episode, ctx) for episode in suite.episodes(settings, limit=2)]
    for result in results:
        again = EpisodeResult.model_validate_json(result.model_dump_json())
        assert again.policy_kind == "agent" and again.error is None
        traj = again.trajectory
        assert traj is not None and traj.agent == "env"
        assert traj.status in ("solved", "max_steps", "parse_error") or (traj.status, traj.final_answer) == (
            "error", "lost"), (traj.status, traj.error)
        assert again.env_steps >= 1, [(s.kind, s.raw) for s in traj.steps]
        assert 1 <= len(traj.steps) <= 4 and traj.usage.model_calls == len(traj.steps)
        assert all(s.prompt_tokens > 0 and s.observation for s in traj.steps)
        assert again.env_steps == sum(1 for s in traj.steps if s.kind == "action" and s.action != "think")
        assert again.success == (traj.status == "solved")
    saved = list(read_jsonl(tmp_path / "trajectories.jsonl", Trajectory))
    assert [t.id for t in saved] == [r.trajectory_ids[0] for r in results]
