"""The model a fine-tuning run starts from: ``embedded``, ``transformers:DIR``, a model directory or a GGUF file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, MissingExtraError
from ponder.core.model_spec import parse_spec
from ponder.core.settings import Settings, load_settings

#: The record ``ponder train`` writes beside its weights (also :data:`ponder.training.sft.TRAIN_RECORD`).
TRAIN_RECORD = "ponder-train.json"


def require_train_extra() -> None:
    """Check that TRL, PEFT and datasets import.

    Raises:
        MissingExtraError: naming the extra to install.
    """
    try:
        import datasets  # noqa: F401
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(exc.name or "trl", "train", "fine-tuning") from None


def base_source(base: str) -> Path | None:
    """The file or directory ``base`` names (``None`` for the embedded model).

    A GGUF that ``ponder train`` exported beside its weights (``DIR/model.gguf`` with ``DIR/ponder-train.json``)
    names ``DIR``: fine-tuning starts from the float32 weights, not from their Q8_0 copy dequantized.

    Raises:
        ConfigError: for a spec that is not a local model (served models cannot be fine-tuned here), or a path
            that is neither a GGUF file nor a transformers directory.
    """
    text = base.strip()
    if text == "embedded":
        return None
    spec = parse_spec(text) if ":" in text and not Path(text).exists() else None
    if spec is not None and spec.kind not in ("transformers", "llamacpp"):
        raise ConfigError(f"--base {base!r}: only local weights can be fine-tuned (embedded, transformers:DIR, "
                          "a .gguf file or a model directory)")
    path = Path(spec.path if spec is not None else text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        beside = path.parent
        if (beside / TRAIN_RECORD).is_file() and (beside / "config.json").is_file():
            return beside  # ponder train's export: train from the full-precision weights it was made from
        return path
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise ConfigError(f"--base {base!r}: {path} is neither a .gguf file nor a transformers model directory "
                      "(with config.json)")


def load_base(base: str, settings: Settings | None = None) -> tuple[Any, Any]:
    """Load the base model (float32) and its tokenizer; GGUF files go through ponder's safetensors cache.

    Raises:
        ConfigError: see :func:`base_source`; also when the embedded model's package is missing.
        ModelError: when the weights fail to load.
    """
    from ponder.models.gguf_cache import find_embedded_gguf, load_gguf, load_model_dir

    settings = settings or load_settings()
    source = base_source(base)
    if source is None:
        source = find_embedded_gguf()
    if source.suffix.lower() == ".gguf":
        model, tokenizer, _cached = load_gguf(source, settings.cache_dir)
        return model, tokenizer
    return load_model_dir(source)
