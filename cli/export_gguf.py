"""``ponder export gguf``: a trained (or any llama-architecture) transformers directory as a GGUF for llama.cpp."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import typer


def export_gguf_command(
    model_dir: Annotated[Path, typer.Argument(help="A transformers model directory (e.g. ponder train's --out).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The GGUF file (default: MODEL_DIR/model.gguf).")]
    = None,
    fmt: Annotated[Literal["q8_0", "f16"], typer.Option("--format", help="q8_0 (default; close to lossless, "
                                                        "fast on CPU) or f16.")] = "q8_0",
) -> None:
    """Write MODEL_DIR as a GGUF file so --model llamacpp:FILE runs it fast (ponder train does this itself)."""
    from ponder.core.console import console
    from ponder.training.gguf_export import export_gguf

    target = out or model_dir / "model.gguf"
    start = time.monotonic()
    written = export_gguf(model_dir, target, fmt)
    size = written.stat().st_size / 2**20
    console.print(f"{written} ({fmt}, {size:,.0f} MiB, {time.monotonic() - start:.1f} s): "
                  f"--model llamacpp:{written}", highlight=False, soft_wrap=True)
