"""The base a fine-tuning run starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.training.sft_base import TRAIN_RECORD, base_source


def test_a_gguf_ponder_train_exported_names_its_weights(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.gguf").write_bytes(b"GGUF")
    (model / "config.json").write_text("{}")
    assert base_source(f"llamacpp:{model / 'model.gguf'}") == model / "model.gguf"  # no ponder-train.json
    (model / TRAIN_RECORD).write_text("{}")
    assert base_source(f"llamacpp:{model / 'model.gguf'}") == model  # the float32 weights, not the Q8_0 copy
    assert base_source(f"transformers:{model}") == model
    assert base_source("embedded") is None


def test_bases_that_cannot_be_fine_tuned(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only local weights"):
        base_source("openai:m@http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="neither a .gguf"):
        base_source(str(tmp_path))
