"""One STaR round's data and training stages (the loop itself: :mod:`ponder.training.star`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ponder.core.errors import DataError
from ponder.core.io import write_atomic
from ponder.core.settings import Settings
from ponder.envs.base import Episode
from ponder.envs.qa import QASuite
from ponder.training.examples import SFTExample, iter_examples, write_examples
from ponder.training.prompt import agent_prefix
from ponder.training.rationalize import hinted_episodes, keep_rationales
from ponder.training.star_config import StarConfig
from ponder.training.star_data import DataStats, keep_correct, trajectories_by_episode
from ponder.training.star_runs import ModelRun, StarDeps, play, run_settings


def collect(config: StarConfig, round_no: int, suite: QASuite, train: list[Episode], sampling: ModelRun,
            hinting: ModelRun, settings: Settings, deps: StarDeps) -> dict[str, Any]:
    """Keep the correct samples, rationalize the unsolved questions, add seed data; write ``data.jsonl``.

    Returns:
        The round's :class:`~ponder.training.star_data.DataStats` (also ``data.stats.json``).

    Raises:
        DataError: when nothing is left to train on, or the seed data is unreadable.
    """
    own = suite.settings_for(run_settings(settings, sampling))  # the tools the runs had
    prefix = agent_prefix(config.agent, own.tools, own)
    stats = DataStats(questions=len(train))
    sampled = trajectories_by_episode(sampling.out_dir)
    examples: list[SFTExample] = []
    unsolved: list[Episode] = []
    for episode in train:
        kept = keep_correct(sampled.get(episode.id, []), episode, suite, prefix, stats, round_no=round_no,
                            limit=config.keep_per_question, keep_malformed=config.keep_malformed)
        examples.extend(kept)
        if not kept:  # no correct sample (or only malformed ones): rationalize
            unsolved.append(episode)
    if config.rationalize and unsolved:
        deps.log(f"[star] round {round_no} rationalize: {len(unsolved)} unsolved question(s) with the answer as a hint")
        play(suite, hinted_episodes(unsolved), hinting, settings, deps, workers=config.workers, quiet=config.quiet)
        hinted = trajectories_by_episode(hinting.out_dir)
        examples.extend(keep_rationales(hinted, unsolved, suite, prefix, stats, round_no=round_no))
    if config.seed_data is not None:
        seed = list(iter_examples(config.seed_data))
        stats.seed_examples = len(seed)
        examples.extend(seed)
    stats.examples = len(examples)
    rdir = sampling.out_dir.parent
    write_examples(rdir / "data.jsonl", examples)
    write_atomic(rdir / "data.stats.json", stats.model_dump_json(indent=2) + "\n")
    if not examples:
        raise DataError(f"round {round_no} kept no examples (no correct sample, no usable rationale, no seed data): "
                        "nothing to fine-tune on; try more --samples, more training questions or --seed-data")
    return stats.model_dump(mode="json")


def fine_tune(config: StarConfig, rdir: Path, deps: StarDeps) -> dict[str, Any]:
    """Fine-tune the BASE model on ``rdir/data.jsonl`` into ``rdir/model`` (continuing from its checkpoints).

    Returns:
        The :class:`~ponder.training.sft.TrainResult` as JSON plus ``model_spec``: how the next stages run it.
    """
    from ponder.training.sft import TRAIN_RECORD, TrainConfig, TrainResult

    out = rdir / "model"
    record = out / TRAIN_RECORD
    if record.is_file():  # trained, but stopped before the stage was marked
        result = TrainResult.model_validate(json.loads(record.read_text(encoding="utf-8"))["result"])
    else:
        checkpoints = out / "checkpoints"
        resume = checkpoints.is_dir() and any(checkpoints.iterdir())
        train = TrainConfig(data=rdir / "data.jsonl", out=out, base=config.base, resume=resume, **config.train)
        result = deps.trainer(train, quiet=config.quiet)
    gguf = result.gguf
    spec = f"llamacpp:{Path(gguf).resolve()}" if gguf is not None else f"transformers:{out.resolve()}"
    return {**result.model_dump(mode="json"), "model_spec": spec}
