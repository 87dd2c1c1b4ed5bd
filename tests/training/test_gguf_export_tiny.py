"""A tiny random llama exported to GGUF gives transformers' logits in llama.cpp: the paths the embedded model does not
take (an untied ``output.weight``, rows of 48 that Q8_0's 32-value blocks do not divide so they fall back to F16, a
vocabulary padded beyond the tokenizer), and the ``smollm`` pre-tokenizer (SmolLM2's original tokenizer.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ponder.training.gguf_export import export_gguf

pytestmark = pytest.mark.integration

TEXTS = ["The cat sat on the mat 12 times.", "It's 3.14, isn't it?", "Hello world\n\nagain"] * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _tokenizer(digits: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|im_end|>")


def _tiny_model(directory: Path, digits: bool) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer(digits)
    config = LlamaConfig(vocab_size=len(tokenizer) + 5, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False, initializer_range=0.2, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer


@pytest.mark.parametrize("digits", [False, True])
def test_tiny_llama_exports_with_transformers_logits(tmp_path: Path, digits: bool) -> None:
    import gguf
    import torch
    from llama_cpp import Llama

    model, tokenizer = _tiny_model(tmp_path / "tiny", digits)
    ids = tokenizer(TEXTS[0] + TEXTS[1])["input_ids"]
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    for fmt, tolerance in (("f16", 0.05), ("q8_0", 0.3)):
        out = export_gguf(tmp_path / "tiny", tmp_path / f"tiny-{fmt}.gguf", fmt)  # type: ignore[arg-type]
        reader = gguf.GGUFReader(out)
        types = {t.name: t.tensor_type.name for t in reader.tensors}
        assert types["output.weight"] == "F16" and types["blk.0.ffn_down.weight"] == fmt.upper()  # rows 48 / 96
        assert reader.fields["tokenizer.ggml.pre"].contents() == ("smollm" if digits else "gpt-2")
        assert reader.fields["tokenizer.ggml.tokens"].contents()[-1] == f"[PAD{len(tokenizer) + 4}]"
        llm = Llama(str(out), n_ctx=64, n_threads=1, n_threads_batch=1, verbose=False, logits_all=True)
        try:
            assert llm.tokenize(TEXTS[0].encode(), add_bos=False, special=True) == tokenizer(TEXTS[0])["input_ids"]
            llm.eval(ids)
            got = np.array(llm.scores[: len(ids)], dtype=np.float32)
        finally:
            llm.close()
        assert float(np.abs(got - ref).max()) < tolerance, fmt
        assert (got.argmax(axis=1) == ref.argmax(axis=1)).mean() > 0.9
