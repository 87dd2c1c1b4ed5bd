"""``run_eval_ray``: the evaluation runner's episodes as shards of Ray tasks (helper "ray" implements this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.base import Episode, Suite
    from ponder.envs.context import EvalOptions
    from ponder.envs.progress import Progress
    from ponder.envs.ray_options import RayOptions
    from ponder.envs.runner import EvalRun


def run_eval_ray(suite: Suite, options: EvalOptions, settings: Settings, ray: RayOptions, *,
                 progress: Progress | None = None, episodes: list[Episode] | None = None, report: bool = True,
                 quiet: bool = False) -> EvalRun:
    """Like :func:`ponder.envs.runner.run_eval`, with each shard of episodes a Ray task (in progress)."""
    raise NotImplementedError("work in progress (issue 20)")
