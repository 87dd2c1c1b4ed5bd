"""The weights of a GGUF export: HF llama tensors renamed, Q/K permuted, and stored as F32, F16 or Q8_0.

As llama.cpp's ``convert_hf_to_gguf.py`` (``LlamaModel``): names come from ``gguf.TensorNameMap`` for
``MODEL_ARCH.LLAMA`` (``model.layers.0.self_attn.q_proj.weight`` -> ``blk.0.attn_q.weight``); the rows of
``q_proj`` and ``k_proj`` are permuted from HF's rotary layout (the two rotated halves of each head) to llama.cpp's
(interleaved pairs); tied embeddings write no ``output.weight`` (llama.cpp then uses ``token_embd.weight``).
1-D tensors (the RMS norms) stay F32; 2-D weights become F16, or Q8_0 where a row is a multiple of the 32-value block
(else F16, as llama.cpp's converter falls back).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError

_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ExportTensor:
    """One tensor ready for ``GGUFWriter.add_tensor``: its GGUF name, data and storage type."""

    name: str
    data: Any  # numpy array (uint8 bytes for Q8_0)
    qtype: Any  # gguf.GGMLQuantizationType


def safetensors_files(model_dir: Path) -> list[Path]:
    """The weight files of a transformers directory (one ``model.safetensors`` or the shards of its index).

    Raises:
        ConfigError: when there are none (a LoRA adapter directory gets a hint to merge it first).
    """
    index = model_dir / _INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"GGUF export: cannot read {index}: {exc}") from None
        files = [model_dir / s for s in shards]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"GGUF export: {model_dir} lacks the weight shards {', '.join(missing)}")
        return files
    if (model_dir / "model.safetensors").is_file():
        return [model_dir / "model.safetensors"]
    hint = (" (it holds a LoRA adapter: merge it into the base first, model.merge_and_unload())"
            if (model_dir / "adapter_config.json").is_file() else "")
    raise ConfigError(f"GGUF export: {model_dir} has no model.safetensors{hint}")


def hf_tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(name, float32 numpy array)`` for every tensor of the directory's safetensors files.

    Raises:
        ConfigError: when a weight file cannot be read (truncated, not safetensors).
    """
    import torch
    from safetensors import SafetensorError, safe_open

    for path in safetensors_files(model_dir):
        try:
            handle = safe_open(str(path), framework="pt")
        except (OSError, SafetensorError) as exc:
            raise ConfigError(f"GGUF export: cannot read the weights {path}: {exc}") from None
        with handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                yield name, handle.get_tensor(name).to(torch.float32).numpy()


def permute_rotary(weights: Any, n_head: int) -> Any:
    """Reorder the rows of a q/k projection from HF's rotary layout to llama.cpp's (``convert_hf_to_gguf.permute``).

    Each head's rows ``[x_0 .. x_{d/2-1}, y_0 .. y_{d/2-1}]`` become ``[x_0, y_0, x_1, y_1, ...]``.
    """
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def storage(data: Any, fmt: str) -> tuple[Any, Any]:
    """Encode one tensor: 1-D as F32; 2-D as F16, or Q8_0 when ``fmt`` is q8_0 and the rows fit its blocks."""
    import gguf
    import numpy as np

    qtypes = gguf.GGMLQuantizationType
    if data.ndim <= 1:
        return data.astype(np.float32), qtypes.F32
    if fmt == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtypes.Q8_0][0] == 0:
        return gguf.quants.quantize(data, qtypes.Q8_0), qtypes.Q8_0
    return data.astype(np.float16), qtypes.F16


def export_tensors(model_dir: Path, n_layer: int, n_head: int, n_kv_head: int, tied: bool,
                   fmt: str) -> Iterator[ExportTensor]:
    """Yield every tensor of a llama checkpoint under its GGUF name, permuted and encoded for ``fmt``.

    Raises:
        ConfigError: for a tensor that is not part of a plain llama model (e.g. unmerged LoRA weights).
    """
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)
    for hf_name, data in hf_tensors(model_dir):
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue  # recomputed from rope_theta
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp uses token_embd.weight when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConfigError(f"GGUF export: unexpected tensor {hf_name!r} in {model_dir}; only plain llama "
                              "checkpoints (LoRA merged) are supported")
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = permute_rotary(data, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = permute_rotary(data, n_kv_head)
        encoded, qtype = storage(data, fmt)
        yield ExportTensor(name, encoded, qtype)
