"""``ponder train``: supervised fine-tuning of a causal LM on chat-format data with TRL's ``SFTTrainer``.

(Lead: being written. The interface below is fixed.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GgufFormat = Literal["q8_0", "f16", "none"]
#: What ``ponder train`` writes beside the weights: this config, the data's SHA-256 and the run's figures.
TRAIN_RECORD = "ponder-train.json"


class TrainConfig(BaseModel):
    """One fine-tuning run (``ponder train`` options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path
    out: Path
    base: str = Field("embedded", description="embedded, transformers:DIR, or a .gguf / model directory path.")
    method: Literal["full", "lora"] = "full"
    device: str = "cpu"
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    max_minutes: float | None = Field(None, gt=0, description="Stop (and save) after this much training time.")
    limit: int | None = Field(None, ge=1, description="Only the first N examples of the data.")
    learning_rate: float | None = Field(None, gt=0, description="Default: 5e-5 full, 2e-4 LoRA.")
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    save_steps: int = Field(50, ge=1)
    resume: bool = False
    seed: int = 0
    gguf: GgufFormat = "q8_0"


class TrainResult(BaseModel):
    """What a run did (also saved in ``<out>/ponder-train.json`` with the config and the data hash)."""

    out: Path
    steps: int
    examples: int
    epochs_done: float
    train_tokens: int
    seconds: float
    tokens_per_second: float
    final_loss: float | None
    gguf: Path | None
    stopped_by: Literal["done", "max_steps", "max_minutes"]


def train_sft(config: TrainConfig, *, quiet: bool = False) -> TrainResult:
    """Fine-tune ``config.base`` on ``config.data``.

    The merged model is saved as a transformers directory in ``config.out`` and, unless ``gguf="none"``, exported
    to ``config.out / "model.gguf"``.
    """
    raise NotImplementedError("lead is writing this")
