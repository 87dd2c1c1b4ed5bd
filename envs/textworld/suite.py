"""The ``textworld`` suite: generated games by tier, played by the agent or the ``walkthrough`` harness policy.

``episodes()`` generates the suite's missing games into the cache (``cache.py``; in parallel generator
processes), writes the suite manifest ``<cache_dir>/textworld/suites/<suite>.json`` and returns one episode
per game (id ``t<tier>-<generator>-s<seed>``, task = the game's objective). ``data`` picks the suite file:
a path, or a shipped suite's name (``default``: 50 games in 3 tiers; ``small``: 3 quick games for CI).

``run_episode()`` plays one game: ``agent`` through the env-agent graph (``graphs/env_agent.py``, model
``ctx.model``; a run spec with a strategy, samples or trials runs that strategy, each run in a fresh copy of the
game), ``random`` uniformly over the admissible commands (the baseline: no model), ``walkthrough`` by replaying
the stored walkthrough (a harness check: it must win 100%). The step cap (agent and random) is
``ctx.extra["max_steps"]``, else ``settings.max_steps`` when set explicitly, else the tier's ``max_steps``.
Score: the normalised game score (points / max points); success: the game is won.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.envs.base import Episode, EpisodeResult, EvalContext
from ponder.envs.textworld.cache import GAME_FILE, ensure_games, games_root, write_suite_manifest
from ponder.envs.textworld.spec import GameSpec, load_suite_spec

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions

DEFAULT_SUITE = "default"


class TextWorldSuite:
    """TextWorld games listed in a suite file.

    Args:
        suite_file: A shipped suite's name or a suite file (``episodes(data=...)`` overrides it).
        gen_workers: Generator processes (default: ``$PONDER_TW_GEN_WORKERS`` or min(4, CPU count)).
    """

    name = "textworld"
    policies: tuple[str, ...] = ("walkthrough", "random")
    needs_process = True

    def __init__(self, suite_file: str | Path = DEFAULT_SUITE, gen_workers: int | None = None) -> None:
        self.suite_file = suite_file
        env_workers = os.environ.get("PONDER_TW_GEN_WORKERS")
        self.gen_workers = gen_workers or (int(env_workers) if env_workers else min(4, os.cpu_count() or 1))

    def check_options(self, options: EvalOptions) -> None:
        """Nothing to check beyond the run spec: every strategy option applies to this suite."""

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """The suite's games (generated when missing), in file order.

        Raises:
            DataError: for a bad suite file or a game that cannot be generated.
        """
        require_textworld()
        spec = load_suite_spec(data or self.suite_file)
        games = spec.games()[:limit] if limit else spec.games()
        root = games_root(settings)
        manifests = ensure_games(games, root, workers=self.gen_workers)
        episodes, rows = [], []
        for game in games:
            manifest = manifests[game.key]
            episodes.append(Episode(
                id=game.id, suite=self.name, task=manifest.objective, tier=game.tier,
                metadata={"suite_file": spec.name, "game": game.model_dump(), "key": game.key,
                          "walkthrough_length": len(manifest.walkthrough), "max_score": manifest.max_score,
                          "definition_sha256": manifest.definition_sha256}))
            rows.append({"id": game.id, "tier": game.tier, **manifest.model_dump(exclude={"created"})})
        write_suite_manifest(root.parent / "suites" / f"{spec.name}.json", spec.name, rows)
        return episodes

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Play one game with ``ctx.policy`` (``agent``, the ``random`` baseline or ``walkthrough``).

        ``agent`` with a run spec that is more than one plain run (``--strategy``, ``--samples``, ``--trials``)
        runs the spec's strategy, each of its runs in a fresh copy of the game.
        """
        from ponder.envs.play import episode_result, plain_single, play_episode, play_strategy
        from ponder.envs.random_policy import POLICY as RANDOM
        from ponder.envs.random_policy import play_random
        from ponder.envs.textworld.env import TextWorldEnv
        from ponder.envs.textworld.walkthrough import POLICY, play_walkthrough

        if ctx.policy not in ("agent", RANDOM, POLICY):
            raise ConfigError(f"the textworld suite has no policy {ctx.policy!r}; choose agent, {RANDOM} or {POLICY}")
        require_textworld()
        game = GameSpec.model_validate(episode.metadata["game"])
        root = games_root(ctx.settings)
        manifest = ensure_games([game], root, workers=1)[game.key]

        def make_env() -> TextWorldEnv:
            return TextWorldEnv(root / game.key / GAME_FILE, name=f"textworld/{episode.id}",
                                objective=manifest.objective)

        outcome = None
        if ctx.policy == "agent" and not plain_single(ctx.spec):
            run, outcome = play_strategy(make_env, episode, ctx, max_steps=agent_max_steps(game, ctx),
                                         max_reward=manifest.max_score or None)
        else:
            env = make_env()
            try:
                if ctx.policy == POLICY:
                    run = play_walkthrough(env, episode, manifest.walkthrough, ctx.out_dir)
                elif ctx.policy == RANDOM:
                    run = play_random(env, episode, seed=ctx.settings.seed, max_steps=agent_max_steps(game, ctx),
                                      out_dir=ctx.out_dir)
                else:
                    run = play_episode(env, episode, ctx, max_steps=agent_max_steps(game, ctx))
            finally:
                env.close()
        normalised = run.reward / manifest.max_score if manifest.max_score else float(run.success)
        metadata: dict[str, Any] = {"key": game.key, "definition_sha256": manifest.definition_sha256,
                                    "walkthrough_length": len(manifest.walkthrough)}
        if ctx.policy == POLICY:
            metadata["harness_check"] = True
        return episode_result(run, episode, policy=ctx.policy, score=round(normalised, 4),
                              metrics={"max_score": manifest.max_score, "normalized_score": round(normalised, 4)},
                              metadata=metadata, outcome=outcome, spec=ctx.spec)


def require_textworld() -> None:
    """Raise :class:`ConfigError` when TextWorld is not installed (it comes with the ``eval`` extra)."""
    import importlib.util

    if importlib.util.find_spec("textworld") is None:
        raise ConfigError("the textworld suite needs textworld==1.7.0: pip install 'ponder[eval]'")


def agent_max_steps(game: GameSpec, ctx: EvalContext) -> int:
    """The agent's step cap: ``ctx.extra["max_steps"]``, explicit ``settings.max_steps``, else the tier's."""
    if ctx.extra.get("max_steps"):
        return int(ctx.extra["max_steps"])
    if "max_steps" in ctx.settings.model_fields_set:
        return ctx.settings.max_steps
    return game.max_steps


def textworld_suite() -> TextWorldSuite:
    """The ``textworld`` suite (registry factory)."""
    return TextWorldSuite()
