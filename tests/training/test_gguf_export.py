"""GGUF export without the embedded model: bad inputs get clear errors and leave ``out`` alone; the Q/K permutation
and the pre-tokenizer detection; a tiny random llama (untied output, rows that Q8_0 cannot block, padded vocabulary)
exports, loads in llama.cpp and gives transformers' logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ponder.core.errors import ConfigError
from ponder.training.gguf_export import export_gguf, llama_params
from ponder.training.gguf_tensors import permute_rotary
from ponder.training.gguf_vocab import pre_tokenizer_name

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
         "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 300,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def _model_dir(path: Path, config: dict[str, Any] | None = None, tokenizer: dict[str, Any] | None = None) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(LLAMA if config is None else config))
    if tokenizer is not None:
        (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return path


def _bpe(**model: Any) -> dict[str, Any]:
    return {"normalizer": None, "pre_tokenizer": BYTE_LEVEL, "added_tokens": [],
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]], **model}}


@pytest.mark.parametrize(("config", "tokenizer", "message"), [
    ({**LLAMA, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, None, "not a llama-architecture"),
    ({**LLAMA, "architectures": ["LlamaForSequenceClassification"]}, None, "not a llama-architecture"),
    ({**LLAMA, "rope_parameters": {"rope_type": "llama3", "factor": 8.0}}, None, "RoPE scaling 'llama3'"),
    ({**LLAMA, "attention_bias": True}, None, "biases"),
    ({k: v for k, v in LLAMA.items() if k != "hidden_size"}, None, "lacks or mangles 'hidden_size'"),
    (LLAMA, None, "has no tokenizer.json"),
    (LLAMA, {**_bpe(), "model": {"type": "Unigram", "vocab": []}}, "Unigram tokenizer"),
    (LLAMA, _bpe(byte_fallback=True), "with byte fallback"),
    (LLAMA, {**_bpe(), "normalizer": {"type": "NFC"}}, "normalizer"),
    (LLAMA, _bpe(vocab={"a": 0, "b": 400}), "token id 400"),
    (LLAMA, _bpe(), "has no model.safetensors"),
])
def test_bad_model_directories_are_refused_clearly(tmp_path: Path, config: dict, tokenizer: dict | None,
                                                   message: str) -> None:
    directory = _model_dir(tmp_path / "m", config, tokenizer)
    out = tmp_path / "out.gguf"
    out.write_bytes(b"old")
    with pytest.raises(ConfigError, match=message):
        export_gguf(directory, out, "f16")
    assert out.read_bytes() == b"old"  # left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "out.gguf"]  # and no temporary file behind


def test_missing_paths_formats_and_unmerged_adapters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        export_gguf(tmp_path / "nope", tmp_path / "o.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json; it is not a transformers model directory"):
        export_gguf(tmp_path / "empty", tmp_path / "o.gguf")
    with pytest.raises(ConfigError, match="unknown format 'q4_0'"):
        export_gguf(tmp_path / "empty", tmp_path / "o.gguf", "q4_0")  # type: ignore[arg-type]
    adapter = _model_dir(tmp_path / "adapter", LLAMA, _bpe())
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="LoRA adapter: merge it"):
        export_gguf(adapter, tmp_path / "o.gguf")
    broken = _model_dir(tmp_path / "broken", LLAMA, _bpe())
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ConfigError, match="cannot read the weights"):
        export_gguf(broken, tmp_path / "o.gguf")
    assert not (tmp_path / "o.gguf").exists()
    with pytest.raises(ConfigError, match="is a directory; name the GGUF file"):  # not an IsADirectoryError at the end
        export_gguf(adapter, tmp_path)


def test_hyperparameters_come_from_either_transformers_config_layout() -> None:
    v5 = llama_params({**LLAMA, "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}})
    v4 = llama_params({**LLAMA, "rope_theta": 100000.0, "rope_scaling": None})
    assert v5 == v4 and v5.rope_theta == 100000.0 and v5.head_dim == 16 and v5.n_kv_head == 2


def test_rotary_permutation_interleaves_each_heads_halves() -> None:
    rows = np.arange(16, dtype=np.float32).reshape(16, 1) * np.ones((1, 3), dtype=np.float32)  # 2 heads of dim 8
    permuted = permute_rotary(rows, n_head=2)
    assert permuted[:, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]
    assert (permuted[:, 1:] == permuted[:, :1]).all()


def test_pre_tokenizer_is_read_from_the_tokenizer_structure() -> None:
    assert pre_tokenizer_name({"pre_tokenizer": BYTE_LEVEL}) == "gpt-2"
    digits = {"type": "Digits", "individual_digits": True}
    smollm = {"type": "Sequence", "pretokenizers": [digits, BYTE_LEVEL]}
    assert pre_tokenizer_name({"pre_tokenizer": smollm}) == "smollm"
    for other in ({**BYTE_LEVEL, "add_prefix_space": True}, {"type": "Metaspace"},
                  {"type": "Sequence", "pretokenizers": [{**digits, "individual_digits": False}, BYTE_LEVEL]}):
        with pytest.raises(ConfigError, match="unsupported pre-tokenizer"):
            pre_tokenizer_name({"pre_tokenizer": other})
