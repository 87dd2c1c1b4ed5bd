"""Export a fine-tuned llama-architecture transformers directory to GGUF (F16 or Q8_0) with the ``gguf`` writer.

The directory is what ``model.save_pretrained`` + ``tokenizer.save_pretrained`` write (``config.json``,
``model.safetensors`` or shards, ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``). The file
follows llama.cpp's ``convert_hf_to_gguf.py`` for ``LlamaForCausalLM``: hyperparameters here, the weights in
:mod:`ponder.training.gguf_tensors`, the tokenizer in :mod:`ponder.training.gguf_vocab`. It is written to a
temporary file beside ``out`` and renamed onto it, so ``out`` is either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.core.errors import ConfigError, MissingExtraError

FORMATS = ("f16", "q8_0")


@dataclass(frozen=True)
class LlamaParams:
    """The hyperparameters of a llama checkpoint that llama.cpp reads from GGUF keys."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_kv_head: int
    head_dim: int
    n_ctx: int
    n_vocab: int
    rope_theta: float
    rms_eps: float
    tied: bool


def _rope_theta(config: dict[str, Any]) -> float:
    """``rope_theta`` from transformers 5's ``rope_parameters`` or 4.x's top-level keys; only plain RoPE."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default":
        raise ConfigError(f"GGUF export: RoPE scaling {kind!r} is not supported (only plain RoPE)")
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def llama_params(config: dict[str, Any]) -> LlamaParams:
    """Read and check the hyperparameters of a parsed ``config.json``.

    Raises:
        ConfigError: when the model is not a llama-architecture causal LM, or uses a variant not exported here
            (biases, another activation, RoPE scaling).
    """
    archs = config.get("architectures") or ["LlamaForCausalLM"]
    if config.get("model_type") != "llama" or "LlamaForCausalLM" not in archs:
        raise ConfigError(f"GGUF export: not a llama-architecture model (model_type={config.get('model_type')!r}, "
                          f"architectures={archs}); only LlamaForCausalLM is supported")
    if config.get("attention_bias") or config.get("mlp_bias") or config.get("hidden_act", "silu") != "silu":
        raise ConfigError("GGUF export: llama variants with biases or a non-SiLU activation are not supported")
    try:
        n_head = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return LlamaParams(
            n_layer=int(config["num_hidden_layers"]), n_embd=hidden, n_ff=int(config["intermediate_size"]),
            n_head=n_head, n_kv_head=int(config.get("num_key_value_heads") or n_head),
            head_dim=int(config.get("head_dim") or hidden // n_head),
            n_ctx=int(config.get("max_position_embeddings", 2048)), n_vocab=int(config["vocab_size"]),
            rope_theta=_rope_theta(config), rms_eps=float(config.get("rms_norm_eps", 1e-6)),
            tied=bool(config.get("tie_word_embeddings", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"GGUF export: config.json lacks or mangles {exc}") from None


def read_config(model_dir: Path) -> dict[str, Any]:
    """Parse ``model_dir/config.json``.

    Raises:
        ConfigError: when the directory or the file is missing or not a JSON object.
    """
    if not model_dir.is_dir():
        raise ConfigError(f"GGUF export: {model_dir} is not a directory")
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"GGUF export: {model_dir} has no config.json; it is not a transformers model "
                          "directory") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GGUF export: cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"GGUF export: {path} is not a JSON object")
    return config


def _add_params(writer: Any, params: LlamaParams, name: str, fmt: str) -> None:
    import gguf

    writer.add_name(name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if fmt == "q8_0" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_block_count(params.n_layer)
    writer.add_context_length(params.n_ctx)
    writer.add_embedding_length(params.n_embd)
    writer.add_feed_forward_length(params.n_ff)
    writer.add_head_count(params.n_head)
    writer.add_head_count_kv(params.n_kv_head)
    writer.add_rope_freq_base(params.rope_theta)
    writer.add_layer_norm_rms_eps(params.rms_eps)
    writer.add_vocab_size(params.n_vocab)
    writer.add_rope_dimension_count(params.head_dim)
    if params.head_dim != params.n_embd // params.n_head:
        writer.add_key_length(params.head_dim)
        writer.add_value_length(params.head_dim)


def _write_atomic(writer: Any, out: Path) -> None:
    """Write the GGUF to a temporary file beside ``out``, then rename it onto ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer.write_header_to_file(path=Path(tmp))
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def export_gguf(model_dir: Path, out: Path, fmt: Literal["f16", "q8_0"] = "q8_0") -> Path:
    """Write ``model_dir`` (config.json, safetensors, tokenizer) as a GGUF file llama.cpp loads; returns ``out``.

    Args:
        model_dir: A transformers llama directory (``save_pretrained`` of the model and its tokenizer; a LoRA
            model must be merged first).
        out: The GGUF file to write (replaced atomically; its folder is created).
        fmt: ``q8_0`` (2-D weights as Q8_0, about 1.06 bytes a weight) or ``f16``; norms stay F32 either way.

    Raises:
        ConfigError: for an unknown format, ``out`` naming a directory, a directory that is not a llama model, a
            missing or unsupported tokenizer, or weights that do not match the config.
        MissingExtraError: when the ``gguf`` package is not installed.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"GGUF export: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        import gguf
    except ImportError:
        raise MissingExtraError("gguf", "train", "GGUF export") from None
    from ponder.training.gguf_tensors import export_tensors
    from ponder.training.gguf_vocab import add_tokenizer

    model_dir, out = Path(model_dir).expanduser(), Path(out).expanduser()
    if out.is_dir():
        raise ConfigError(f"GGUF export: {out} is a directory; name the GGUF file to write (e.g. {out / 'model.gguf'})")
    params = llama_params(read_config(model_dir))
    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_params(writer, params, model_dir.resolve().name, fmt)
    add_tokenizer(writer, model_dir, params.n_vocab)
    written = set()
    for tensor in export_tensors(model_dir, params.n_layer, params.n_head, params.n_kv_head, params.tied, fmt):
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.qtype)
        written.add(tensor.name)
    _check_complete(written, params, model_dir)
    _write_atomic(writer, out)
    return out


def _check_complete(written: set[str], params: LlamaParams, model_dir: Path) -> None:
    """Check that every tensor llama.cpp needs for this config was found.

    Raises:
        ConfigError: naming the first few missing tensors.
    """
    per_layer = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down")
    needed = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{part}.weight" for i in range(params.n_layer) for part in per_layer}
    if not params.tied:
        needed.add("output.weight")
    missing = sorted(needed - written)
    if missing:
        raise ConfigError(f"GGUF export: {model_dir} lacks {len(missing)} tensor(s) for its config, e.g. "
                          f"{', '.join(missing[:3])}")
