"""``ponder train``: supervised fine-tuning of a causal LM on chat-format data with TRL's ``SFTTrainer``.

The loss covers the assistant turns only (their end-of-turn token included: :mod:`ponder.training.chat_template`).
Full fine-tuning or LoRA (PEFT; the adapter is merged before saving). Checkpoints go to ``<out>/checkpoints``
(the last two are kept) and ``resume`` continues from the newest. The result in ``<out>`` is a transformers model
directory (``--model transformers:<out>``), ``<out>/model.gguf`` (``--model llamacpp:<out>/model.gguf``) and
``<out>/ponder-train.json``: the config, the data's SHA-256, the library versions and the run's figures.
"""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.core.errors import ConfigError, DataError
from ponder.core.io import write_atomic
from ponder.training.examples import data_sha256, iter_examples
from ponder.training.sft_base import TRAIN_RECORD

GgufFormat = Literal["q8_0", "f16", "none"]
_VERSIONS = ("torch", "transformers", "trl", "peft", "datasets")


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
    batch_size: int = Field(1, ge=1, description="Sequences per forward pass (1 wastes no compute on padding).")
    grad_accum: int = Field(8, ge=1, description="Forward passes per optimizer step.")
    max_length: int = Field(1024, ge=16)
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    save_steps: int = Field(50, ge=1)
    resume: bool = False
    seed: int = 0
    gguf: GgufFormat = "q8_0"

    def lr(self) -> float:
        """The learning rate: the configured one, else the method's default."""
        return self.learning_rate or (2e-4 if self.method == "lora" else 5e-5)


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


def load_dataset_rows(config: TrainConfig) -> list[dict[str, Any]]:
    """The examples as TRL conversational prompt/completion rows (metadata dropped).

    The prompt is the system prompt, the few-shot turns and the question (:meth:`SFTExample.prompt_turns`); the
    loss covers the assistant turns of the completion only (TRL's completion-only loss with the assistant mask),
    not the observations and not the few-shot demo replies every example repeats.

    Raises:
        DataError: for unreadable data, or none with an assistant turn.
    """
    rows = []
    for example in iter_examples(config.data):
        if config.limit is not None and len(rows) >= config.limit:
            break
        turns = [turn.model_dump() for turn in example.messages]
        cut = example.prompt_turns()
        if cut and any(turn["role"] == "assistant" for turn in turns[cut:]):
            rows.append({"prompt": turns[:cut], "completion": turns[cut:]})
    if not rows:
        raise DataError(f"{config.data}: no training conversations with an assistant turn")
    return rows


def _sft_args(config: TrainConfig, cuda: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(config.out / "checkpoints"), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.lr(), num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=5,
        save_steps=config.save_steps, save_total_limit=2, seed=config.seed, data_seed=config.seed,
        assistant_only_loss=True, max_length=config.max_length, report_to=[], use_cpu=not cuda, bf16=cuda,
        dataloader_num_workers=0, disable_tqdm=True, include_num_input_tokens_seen="non_padding",
        gradient_checkpointing=False, save_only_model=False)


def _peft_config(config: TrainConfig) -> Any:
    if config.method != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")


def _device(config: TrainConfig) -> bool:
    """Whether the run uses CUDA (checked: a clear error when it is not there)."""
    from ponder.models.transformers_backend import resolve_device

    return resolve_device(config.device).type == "cuda"


def _has_checkpoint(config: TrainConfig) -> bool:
    folder = config.out / "checkpoints"
    return folder.is_dir() and any(p.name.startswith("checkpoint-") for p in folder.iterdir())


def train_sft(config: TrainConfig, *, quiet: bool = False) -> TrainResult:
    """Fine-tune ``config.base`` on ``config.data``.

    The merged model is saved as a transformers directory in ``config.out`` and, unless ``gguf="none"``, exported
    to ``config.out / "model.gguf"``.

    Raises:
        ConfigError: missing extra, bad base, CUDA unavailable, an output path that is a file, an output folder
            with a model or checkpoints but no ``resume``.
        DataError: unreadable or empty data.
    """
    from ponder.training.sft_base import load_base, require_train_extra

    require_train_extra()
    _check_out(config)
    if quiet:
        _quiet_progress_bars()
    cuda = _device(config)
    rows = load_dataset_rows(config)
    model, tokenizer = load_base(config.base)
    started = time.monotonic()
    trainer, budget, progress = build_trainer(config, model, tokenizer, rows, cuda, quiet)
    if len(trainer.train_dataset) == 0:
        raise DataError(f"{config.data}: every example was cut at --max-length {config.max_length} tokens before "
                        "its first assistant turn; raise --max-length (ReAct's prompt alone is ~450 tokens)")
    resume = config.resume and _has_checkpoint(config)
    if not resume:
        write_atomic(config.out / "checkpoints" / _RUN_KEY, json.dumps(_run_key(config), indent=2) + "\n")
    trainer.train(resume_from_checkpoint=True if resume else None)
    result = _finish(config, trainer, tokenizer, budget, progress, len(rows), time.monotonic() - started)
    return result


def _quiet_progress_bars() -> None:
    """No tokenizing or shard-writing bars from datasets and transformers (``--quiet``; for this process)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


#: Beside the checkpoints: what a ``--resume`` must match (the data's SHA-256, the base and the method).
_RUN_KEY = "ponder-run.json"


def _run_key(config: TrainConfig) -> dict[str, str]:
    return {"data_sha256": data_sha256(config.data), "base": config.base, "method": config.method}


def _check_out(config: TrainConfig) -> None:
    """Refuse an ``--out`` that is a file, holds a model or stale checkpoints, or a ``--resume`` changing the run."""
    if config.out.exists() and not config.out.is_dir():
        raise ConfigError(f"--out {config.out} is a file; name the model directory to create")
    if (config.out / TRAIN_RECORD).exists() and not config.resume:
        raise ConfigError(f"{config.out} already holds a trained model; choose another --out or pass --resume")
    if not _has_checkpoint(config):
        return
    if not config.resume:  # a fresh run would rotate its checkpoints among the old ones
        raise ConfigError(f"{config.out} holds the checkpoints of an unfinished run; pass --resume to continue it or "
                          "choose another --out")
    try:
        saved = json.loads((config.out / "checkpoints" / _RUN_KEY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # checkpoints from before ponder recorded the key: nothing to compare
    changed = [k for k, v in _run_key(config).items() if saved.get(k) != v]
    if changed:
        raise ConfigError(f"--resume: {', '.join(changed)} differ(s) from the run in {config.out}; resume with the "
                          "same data, base and method, or start a new --out")


def build_trainer(config: TrainConfig, model: Any, tokenizer: Any, rows: list[dict[str, Any]], cuda: bool,
                  quiet: bool) -> tuple[Any, Any, Any]:
    """The ``SFTTrainer`` for ``rows`` (tokenized, labels masked), its time-budget and progress callbacks.

    The tokenizer gets the training chat template until :func:`train_sft` saves the model.
    """
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from ponder.training.chat_template import training_template
    from ponder.training.sft_progress import ProgressLines, TimeBudget

    original = tokenizer.chat_template
    tokenizer.chat_template = training_template(tokenizer)
    tokenizer.init_kwargs["ponder_original_chat_template"] = original
    budget, progress = TimeBudget(config.max_minutes), ProgressLines(quiet=quiet)
    trainer = SFTTrainer(model=model, args=_sft_args(config, cuda), train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=_peft_config(config), callbacks=[budget, progress])
    trainer.remove_callback(PrinterCallback)  # disable_tqdm's raw log dicts; ProgressLines prints (or not: quiet)
    return trainer, budget, progress


def _finish(config: TrainConfig, trainer: Any, tokenizer: Any, budget: Any, progress: Any, examples: int,
            seconds: float) -> TrainResult:
    state = trainer.state
    model = trainer.model
    if config.method == "lora":
        model = model.merge_and_unload()
    tokenizer.chat_template = tokenizer.init_kwargs.pop("ponder_original_chat_template")
    model.save_pretrained(config.out)
    tokenizer.save_pretrained(config.out)
    gguf = None
    if config.gguf != "none":
        from ponder.training.gguf_export import export_gguf

        gguf = export_gguf(config.out, config.out / "model.gguf", config.gguf)
    steps, tokens = int(state.global_step), int(state.num_input_tokens_seen or 0)
    run_tokens = tokens - progress.start_tokens  # a resumed run's state counts the earlier runs' tokens too
    stopped = "max_minutes" if budget.hit else ("max_steps" if config.max_steps and steps >= config.max_steps
                                                else "done")
    result = TrainResult(out=config.out, steps=steps, examples=examples, epochs_done=round(float(state.epoch or 0), 4),
                         train_tokens=tokens, seconds=round(seconds, 2),
                         tokens_per_second=round(run_tokens / seconds, 1) if seconds > 0 else 0.0,
                         final_loss=progress.last_loss, gguf=gguf, stopped_by=stopped)
    _write_record(config, result)
    return result


def _write_record(config: TrainConfig, result: TrainResult) -> None:
    versions = {}
    for name in _VERSIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    absolute = config.model_copy(update={"data": config.data.resolve(), "out": config.out.resolve()})
    record = {"config": absolute.model_dump(mode="json"), "data_sha256": data_sha256(config.data),
              "result": result.model_dump(mode="json"), "versions": versions,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomic(config.out / TRAIN_RECORD, json.dumps(record, indent=2) + "\n")
