"""The random floor at a given number of environment steps: random restarts until the steps are spent.

A search (LATS) may take many environment steps per game; comparing it with one random episode of the agent's
step cap flatters it. This benchmark gives the random policy the same steps: for each TextWorld game it plays
random episodes (uniform over admissible actions, the tier's step cap, a new seed each) until the budget is
spent, and counts the game won if any episode won. Budgets come from a run folder's ``results.jsonl``
(``--match RUN_DIR``: each game gets the env steps that run used on it) or one number (``--steps N``).
``--repeats`` repeats the whole thing with other seeds; the JSON lines give the mean success and a Wilson
interval over all games × repeats.

    .venv/bin/python benchmarks/random_budget.py --data suite.json --match runs/eval/lats-t1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ponder.core.settings import load_settings
from ponder.envs.metrics import wilson_interval
from ponder.envs.random_policy import play_random
from ponder.envs.textworld.cache import GAME_FILE, ensure_games, games_root
from ponder.envs.textworld.env import TextWorldEnv
from ponder.envs.textworld.spec import GameSpec
from ponder.envs.textworld.suite import TextWorldSuite


def budgets_from(run_dir: Path, count: str) -> dict[str, int]:
    """Episode id -> env steps the run used on it.

    ``count="all"``: every step sent to an environment, a search's replays included (``metadata.env_steps``);
    ``"distinct"``: the search's distinct actions (its tree's nodes but the root: what a fork by state copy would
    cost); runs without a tree count their own env steps either way.
    """
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        meta = row.get("metadata") or {}
        steps = int(row.get("env_steps") or 0)
        if count == "all" and meta.get("env_steps") is not None:
            steps = int(meta["env_steps"])
        elif count == "distinct" and meta.get("nodes"):
            steps = int(meta["nodes"]) - 1
        out[row["episode_id"]] = steps
    return out


def random_at_budget(env: TextWorldEnv, episode, budget: int, cap: int, repeat: int) -> tuple[bool, int, int]:
    """Play random episodes until ``budget`` steps are spent: (won, episodes, steps)."""
    spent, episodes = 0, 0
    while spent < max(budget, 1):
        run = play_random(env, episode.model_copy(update={"id": f"{episode.id}#{repeat}-{episodes}"}), seed=repeat,
                          max_steps=min(cap, max(budget - spent, 1)))
        spent += max(run.env_steps, 1)
        episodes += 1
        if run.success:
            return True, episodes, spent
    return False, episodes, spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="TextWorld suite file (or shipped suite name)")
    parser.add_argument("--match", type=Path, help="run folder whose per-game env steps are the budgets")
    parser.add_argument("--steps", type=int, help="one budget (env steps) for every game")
    parser.add_argument("--count", choices=("all", "distinct"), default="all",
                        help="with --match: all env steps (replays included) or the search's distinct actions")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default="random@budget")
    args = parser.parse_args(argv)
    if (args.match is None) == (args.steps is None):
        parser.error("give exactly one of --match RUN_DIR or --steps N")
    settings = load_settings()
    episodes = TextWorldSuite(args.data).episodes(settings)
    budgets = budgets_from(args.match, args.count) if args.match else {e.id: args.steps for e in episodes}
    root = games_root(settings)
    wins = total = 0
    start = time.perf_counter()
    for episode in episodes:
        if episode.id not in budgets:
            continue
        game = GameSpec.model_validate(episode.metadata["game"])
        manifest = ensure_games([game], root, workers=1)[game.key]
        with TextWorldEnv(root / game.key / GAME_FILE, name=f"textworld/{episode.id}",
                          objective=manifest.objective) as env:
            won_here = 0
            for repeat in range(args.repeats):
                won, _, _ = random_at_budget(env, episode, budgets[episode.id], game.max_steps, repeat)
                won_here += won
        wins += won_here
        total += args.repeats
        print(json.dumps({"episode_id": episode.id, "budget_env_steps": budgets[episode.id],
                          "won_fraction": won_here / args.repeats}), flush=True)
    low, high = wilson_interval(wins, total)
    print(json.dumps({"summary": args.label, "count": args.count if args.match else "fixed",
                      "mean_budget": round(sum(budgets.values()) / max(len(budgets), 1), 1),
                      "games": total // max(args.repeats, 1), "repeats": args.repeats,
                      "success": round(wins / max(total, 1), 4), "wilson95": [round(low, 4), round(high, 4)],
                      "seconds": round(time.perf_counter() - start, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
