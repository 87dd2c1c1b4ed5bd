"""The tokenizer part of a GGUF export: a byte-level BPE ``tokenizer.json`` as llama.cpp's ``gpt2`` tokenizer.

Mirrors llama.cpp's ``convert_hf_to_gguf.py`` (``_set_vocab_gpt2``): the token strings by id (byte-level, e.g.
``Ġthe``), their types (special added tokens CONTROL, other added tokens USER_DEFINED, ids the tokenizer lacks
below the model's vocabulary size ``[PAD<i>]`` UNUSED, the rest NORMAL), the merges, the bos/eos/unk/pad ids, whether
BOS is prepended, and the chat template (the last four read by ``gguf.SpecialVocab`` from ``tokenizer.json``,
``tokenizer_config.json``, ``chat_template.jinja`` and ``config.json``).

llama.cpp's converter picks the pre-tokenizer (``tokenizer.ggml.pre``) by hashing the tokenization of a probe
text; here it is read from the ``tokenizer.json`` structure instead, for the two byte-level forms SmolLM2-style
models use: plain GPT-2 ``ByteLevel`` (``gpt-2``; what transformers writes after loading a GGUF), and ``Digits``
(single digits) then ``ByteLevel`` (``smollm``; the original SmolLM2 tokenizer). Anything else is refused rather
than exported with a tokenizer that silently splits text differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError

_BYTE_LEVEL = {"type": "ByteLevel", "use_regex": True}


def _is_byte_level(pre: dict[str, Any]) -> bool:
    return (all(pre.get(k) == v for k, v in _BYTE_LEVEL.items()) and not pre.get("add_prefix_space"))


def pre_tokenizer_name(tokenizer: dict[str, Any]) -> str:
    """llama.cpp's name for the pre-tokenizer of a parsed ``tokenizer.json``: ``gpt-2`` or ``smollm``.

    Raises:
        ConfigError: for a normalizer, or any other pre-tokenizer (llama.cpp would split text differently).
    """
    pre = tokenizer.get("pre_tokenizer") or {}
    if tokenizer.get("normalizer"):
        raise ConfigError("GGUF export: the tokenizer has a normalizer; only byte-level BPE tokenizers without one "
                          "(GPT-2 / SmolLM style) are supported")
    if _is_byte_level(pre):
        return "gpt-2"
    parts = pre.get("pretokenizers") or []
    if (pre.get("type") == "Sequence" and len(parts) == 2 and parts[0].get("type") == "Digits"
            and parts[0].get("individual_digits") and _is_byte_level(parts[1])):
        return "smollm"
    raise ConfigError(f"GGUF export: unsupported pre-tokenizer {json.dumps(pre)[:200]}; supported are GPT-2's "
                      "ByteLevel and SmolLM's Digits + ByteLevel")


def load_tokenizer_json(model_dir: Path) -> dict[str, Any]:
    """Parse ``model_dir/tokenizer.json`` and check that it is a byte-level BPE tokenizer.

    Raises:
        ConfigError: when the file is missing or unreadable, or the tokenizer is not byte-level BPE.
    """
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"GGUF export: {model_dir} has no tokenizer.json; save the tokenizer beside the weights "
                          "(tokenizer.save_pretrained(DIR))")
    try:
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
        model = tokenizer["model"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"GGUF export: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ConfigError(f"GGUF export: {path} is a {model.get('type')} tokenizer"
                          f"{' with byte fallback' if model.get('byte_fallback') else ''}; only byte-level BPE "
                          "(GPT-2 style) is supported")
    return dict(tokenizer)


def token_table(tokenizer: dict[str, Any], n_vocab: int) -> tuple[list[str], list[int]]:
    """The token strings and llama.cpp token types by id, padded to the model's vocabulary size ``n_vocab``.

    Raises:
        ConfigError: when a token id is outside the model's vocabulary.
    """
    import gguf

    tokens: dict[int, str] = {int(i): t for t, i in tokenizer["model"]["vocab"].items()}
    types: dict[int, int] = {i: gguf.TokenType.NORMAL for i in tokens}
    for added in tokenizer.get("added_tokens") or []:
        tid = int(added["id"])
        tokens[tid] = added["content"]
        types[tid] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    if tokens and max(tokens) >= n_vocab:
        raise ConfigError(f"GGUF export: the tokenizer has token id {max(tokens)} but the model's vocabulary has "
                          f"only {n_vocab} rows")
    names = [tokens.get(i, f"[PAD{i}]") for i in range(n_vocab)]
    kinds = [int(types.get(i, gguf.TokenType.UNUSED)) for i in range(n_vocab)]
    return names, kinds


def add_tokenizer(writer: Any, model_dir: Path, n_vocab: int) -> None:
    """Add the ``tokenizer.*`` keys of ``model_dir``'s tokenizer to a ``gguf.GGUFWriter``.

    Raises:
        ConfigError: see :func:`load_tokenizer_json`, :func:`pre_tokenizer_name`, :func:`token_table`; also when
            the tokenizer has no merges.
    """
    import gguf

    tokenizer = load_tokenizer_json(model_dir)
    pre = pre_tokenizer_name(tokenizer)
    names, kinds = token_table(tokenizer, n_vocab)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    if not special.merges:
        raise ConfigError(f"GGUF export: {model_dir / 'tokenizer.json'} has no BPE merges")
    special.add_special_token.setdefault("bos", False)  # explicit: llama.cpp's default differs by tokenizer
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(names)
    writer.add_token_types(kinds)
    special.add_to_gguf(writer, quiet=True)
