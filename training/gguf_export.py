"""Export a fine-tuned llama-architecture transformers directory to GGUF (F16 or Q8_0) with the ``gguf`` writer.

(Helper "gguf": implement. The interface below is fixed.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal


def export_gguf(model_dir: Path, out: Path, fmt: Literal["f16", "q8_0"] = "q8_0") -> Path:
    """Write ``model_dir`` (config.json, safetensors, tokenizer) as a GGUF file llama.cpp loads; returns ``out``."""
    raise NotImplementedError("helper gguf")
