"""The STaR loop's model runs, all through ``ponder eval``'s machinery (:func:`ponder.envs.runner.run_eval`).

* sampling: k trajectories per training question (self-consistency with k samples records every one);
* rationalization: one greedy run per unsolved question, its answer as a hint in the question;
* evaluation: one greedy run per held-out question, summarized by :func:`ponder.training.figures.eval_figures`.

Every run directory is resumable (``run_eval`` keeps finished episodes), so a stopped stage continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.settings import Settings
from ponder.envs.base import Episode
from ponder.envs.context import EvalOptions
from ponder.envs.qa import QASuite

if TYPE_CHECKING:
    from ponder.models.base import ModelBackend
    from ponder.training.sft import TrainConfig, TrainResult

#: Fine-tunes one round: ``train_sft`` or, in tests, a fake that writes a marker model directory.
Trainer = Callable[..., "TrainResult"]


def _default_trainer(config: TrainConfig, *, quiet: bool = False) -> TrainResult:
    from ponder.training.sft import train_sft

    return train_sft(config, quiet=quiet)


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


@dataclass
class StarDeps:
    """What the loop calls out to (injected by tests).

    Attributes:
        trainer: ``trainer(config: TrainConfig, quiet=bool) -> TrainResult``.
        models: Returns the backend for a model spec (``None``: ``run_eval`` loads the spec itself).
        log: Receives the progress lines.
    """

    trainer: Trainer = _default_trainer
    models: Callable[[str], ModelBackend] | None = None
    log: Callable[[str], None] = field(default=_stderr)


@dataclass
class ModelRun:
    """One ``run_eval`` of the loop: which model, how, where."""

    spec: str
    out_dir: Path
    temperature: float = 0.0
    seed: int = 0
    samples: int = 1


def run_settings(settings: Settings, run: ModelRun) -> Settings:
    """The settings of one run: its model, temperature and seed; tools over the text protocol."""
    return settings.model_copy(update={"model": run.spec, "temperature": run.temperature, "seed": run.seed,
                                       "tool_calling": "text", "agent": "react"})


def play(suite: QASuite, episodes: list[Episode], run: ModelRun, settings: Settings, deps: StarDeps, *,
         workers: int, quiet: bool, report: bool = False) -> Any:
    """Run the ReAct agent on ``episodes`` (``run.samples`` trajectories each, all recorded) into ``run.out_dir``."""
    from ponder.envs.runner import run_eval

    voted = run.samples > 1
    options = EvalOptions(suite=suite.name, out_dir=run.out_dir, resume=True, workers=workers, agent="react",
                          strategy="sc" if voted else "single", samples=run.samples)
    model = deps.models(run.spec) if deps.models is not None else None
    return run_eval(suite, options, run_settings(settings, run), episodes=episodes, model=model, quiet=quiet,
                    report=report)


def evaluate(suite: QASuite, episodes: list[Episode], run: ModelRun, settings: Settings, deps: StarDeps, *,
             workers: int, quiet: bool) -> dict[str, Any]:
    """Greedy held-out evaluation; its figures (accuracy with a Wilson interval, calculator use, parse errors)."""
    from ponder.training.figures import eval_figures

    play(suite, episodes, run, settings, deps, workers=workers, quiet=quiet, report=True)
    return eval_figures(run.out_dir).model_dump(mode="json")
