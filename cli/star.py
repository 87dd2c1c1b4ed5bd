"""``ponder star SUITE --rounds R``: the STaR self-improvement loop (:mod:`ponder.training.star`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

Method = Literal["full", "lora"]


def star_command(
    suite: Annotated[str, typer.Argument(help="A QA suite with numeric answers: gsm8k, svamp.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (rounds, data, models, evaluations, "
                                                          "star.json, report.md).")],
    rounds: Annotated[int, typer.Option(min=1, help="STaR rounds.")] = 1,
    base: Annotated[str, typer.Option(help="embedded, transformers:DIR or llamacpp:FILE.gguf.")] = "embedded",
    samples: Annotated[int, typer.Option("--samples", "-k", min=1, help="Trajectories per training question.")]
    = 4,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    seed: Annotated[int, typer.Option(help="Sampling seed (round r samples with seed + 1000 r).")] = 0,
    train_data: Annotated[Path | None, typer.Option(help="Training questions (JSONL, the suite's schema; "
                                                         "default: the suite's training split).")] = None,
    train_skip: Annotated[int, typer.Option(min=0, help="Skip the first N training rows.")] = 0,
    train_limit: Annotated[int | None, typer.Option(min=1, help="Only N training questions.")] = None,
    keep_per_question: Annotated[int, typer.Option(min=1, help="Correct trajectories kept per question.")] = 1,
    keep_malformed: Annotated[bool, typer.Option("--keep-malformed", help="Also keep correct trajectories with a "
                                                                          "malformed step.")] = False,
    no_rationalize: Annotated[bool, typer.Option("--no-rationalize", help="Do not rationalize unsolved "
                                                                          "questions with the answer as a hint.")]
    = False,
    seed_data: Annotated[Path | None, typer.Option(help="Chat-format examples added to every round's data "
                                                        "(e.g. ponder export gold).")] = None,
    eval_data: Annotated[Path | None, typer.Option("--eval-data", "--eval-suite", help="Held-out questions "
                                                   "file (default: the suite's shipped test file).")] = None,
    eval_limit: Annotated[int | None, typer.Option(min=1, help="Only the first N held-out questions.")] = None,
    eval_extra: Annotated[list[str] | None, typer.Option(help="Also evaluate on this suite (repeatable).")] = None,
    method: Annotated[Method, typer.Option(help="full fine-tuning or LoRA.")] = "full",
    max_steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps per round.")] = None,
    max_minutes: Annotated[float | None, typer.Option(min=0.01, help="Training minutes per round.")] = None,
    epochs: Annotated[float, typer.Option(min=0.001, help="Passes over each round's data.")] = 1.0,
    device: Annotated[str, typer.Option(help="Training device: cpu or cuda[:N].")] = "cpu",
    max_length: Annotated[int, typer.Option(min=16, help="Training tokens per sequence.")] = 1024,
    grad_accum: Annotated[int, typer.Option(min=1, help="Forward passes per optimizer step.")] = 8,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Default: 5e-5 full, 2e-4 LoRA.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64, help="Episodes in parallel.")] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out (finished stages are "
                                                          "kept; --rounds may grow).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Stage lines only (no progress bars).")] = False,
) -> None:
    """STaR: sample, keep the correct, rationalize failures, fine-tune from the base, evaluate; R rounds."""
    from ponder.core.settings import load_settings
    from ponder.training.star import run_star
    from ponder.training.star_config import build_config

    if learning_rate is not None and learning_rate <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--lr")
    train = {"method": method, "max_steps": max_steps, "max_minutes": max_minutes, "epochs": epochs,
             "device": device, "max_length": max_length, "grad_accum": grad_accum, "learning_rate": learning_rate}
    config = build_config(suite=suite, out=out, rounds=rounds, base=base, samples=samples, temperature=temperature,
                          seed=seed, train_data=train_data, train_skip=train_skip, train_limit=train_limit,
                          keep_per_question=keep_per_question, keep_malformed=keep_malformed,
                          rationalize=not no_rationalize, seed_data=seed_data, eval_data=eval_data,
                          eval_limit=eval_limit, eval_extra=tuple(eval_extra or ()), workers=workers, resume=resume,
                          quiet=quiet, train={k: v for k, v in train.items() if v is not None})
    run_star(config, load_settings())
    print(f"report: {out / 'report.md'}")
