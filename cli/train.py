"""``ponder train``: fine-tune a model on chat-format training data (TRL ``SFTTrainer``; full or LoRA)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

Method = Literal["full", "lora"]
Gguf = Literal["q8_0", "f16", "none"]


def train_command(
    data: Annotated[Path, typer.Option("--data", help="Chat-format JSONL (ponder export sft / export gold).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output model directory.")],
    base: Annotated[str, typer.Option(help="embedded, transformers:DIR, a .gguf file or a model directory.")]
    = "embedded",
    method: Annotated[Method, typer.Option(help="full fine-tuning, or a LoRA adapter (merged before saving).")]
    = "full",
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    epochs: Annotated[float, typer.Option(min=0.001, help="Passes over the data.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after N optimizer steps.")] = None,
    max_minutes: Annotated[float | None, typer.Option(min=0.01, help="Stop (and save) after this much "
                                                       "training time.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", min=0.0, help="Default: 5e-5 full, 2e-4 LoRA.")]
    = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per forward pass.")] = 1,
    grad_accum: Annotated[int, typer.Option(min=1, help="Forward passes per optimizer step.")] = 8,
    max_length: Annotated[int, typer.Option(min=16, help="Tokens per sequence (longer ones are cut).")] = 1024,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 16,
    save_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 50,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out.")]
    = False,
    seed: Annotated[int, typer.Option(help="Shuffling and initialisation seed.")] = 0,
    gguf: Annotated[Gguf, typer.Option(help="Also export <out>/model.gguf for llama.cpp.")] = "q8_0",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Fine-tune BASE on --data; the result runs as --model transformers:OUT or llamacpp:OUT/model.gguf."""
    from ponder.core.console import console
    from ponder.training.sft import TrainConfig, train_sft

    if learning_rate is not None and learning_rate <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--lr")
    config = TrainConfig(data=data, out=out, base=base, method=method, device=device, epochs=epochs,
                         max_steps=max_steps, max_minutes=max_minutes, limit=limit, learning_rate=learning_rate,
                         batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, lora_r=lora_r,
                         lora_alpha=2 * lora_r, save_steps=save_steps, resume=resume, seed=seed, gguf=gguf)
    result = train_sft(config, quiet=quiet)
    console.print(f"trained {result.steps} steps on {result.examples} examples ({result.epochs_done} epochs, "
                  f"{result.train_tokens:,} tokens, {result.tokens_per_second:,.0f} tokens/s, "
                  f"{result.seconds / 60:.1f} min; stopped: {result.stopped_by})", highlight=False, soft_wrap=True)
    console.print(f"model: --model transformers:{out}", highlight=False, soft_wrap=True)
    if result.gguf is not None:
        console.print(f"fast:  --model llamacpp:{result.gguf}", highlight=False, soft_wrap=True)
