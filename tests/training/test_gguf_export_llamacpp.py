"""GGUF export of the embedded model's transformers directory, checked against transformers in llama.cpp.

The directory is ponder's safetensors copy of SmolLM2-135M-Instruct (dequantized from the shipped Q4_1 GGUF), so no
training is needed. Prompts go to both sides as the same token ids (transformers' chat template), and a separate
check shows llama.cpp tokenizes the rendered text to the same ids.

F16 must give exactly transformers' float32 greedy tokens. Q8_0 is not held to that: llama.cpp multiplies Q8_0
weights with activations quantized to 8 bits too, which moves this model's logits by up to ~0.9 (measured: max
|Δlogit| 0.88 over the prompts below), while SmolLM2's top two candidates are often closer than that (0.08 at the
first token of "What is the capital of France?", where even the original Q4_1 GGUF picks the other token). Q8_0 is
therefore checked teacher-forced along transformers' greedy continuation: llama.cpp's top token equals
transformers' wherever transformers' margin exceeds 1.5 logits, transformers' token is in llama.cpp's top 3
everywhere, and no logit moves by more than 2.0 (a wrong Q/K permutation or tensor mapping moves them by >10).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ponder.training.gguf_export import export_gguf

pytestmark = pytest.mark.integration

PROMPTS = ["What is the capital of France?", "Question: Tom has 12 apples and eats 5. How many are left?",
           "Write a haiku about rain.", "List three colors."]
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def embedded() -> tuple[Path, Any, Any]:
    """The embedded model's converted transformers directory, and the model (float32) and tokenizer loaded from it."""
    from ponder.core.settings import load_settings
    from ponder.models.gguf_cache import find_embedded_gguf, load_gguf, source_sha256

    cache_dir = load_settings().cache_dir
    source = find_embedded_gguf()
    model, tokenizer, _cached = load_gguf(source, cache_dir)
    directory = cache_dir / "models" / source_sha256(source, cache_dir)[:16]
    assert (directory / "config.json").is_file()
    return directory, model.float().eval(), tokenizer


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on this shared 2-core machine two threads made the forward passes ~5x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(embedded: tuple[Path, Any, Any]) -> dict[str, tuple[list[int], list[int]]]:
    """Per prompt: its token ids and transformers' float32 greedy continuation."""
    _dir, model, tokenizer = embedded
    return {prompt: (ids, _hf_greedy(model, ids)) for prompt in PROMPTS for ids in [_ids(tokenizer, prompt)]}


@pytest.fixture(scope="module")
def exports(embedded: tuple[Path, Any, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both formats, exported once for the module (about 1.5 s and 2.5 s)."""
    out = tmp_path_factory.mktemp("gguf")
    return {fmt: export_gguf(embedded[0], out / f"model-{fmt}.gguf", fmt) for fmt in ("f16", "q8_0")}  # type: ignore[arg-type]


@contextlib.contextmanager
def _llama(path: Path, logits_all: bool = False) -> Iterator[Any]:
    from llama_cpp import Llama

    # one thread: llama.cpp's spinning worker threads ran ~10x slower on the busy 2-core machine with two
    llm = Llama(str(path), n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False, seed=0, logits_all=logits_all)
    try:
        yield llm
    finally:
        llm.close()


def _ids(tokenizer: Any, text: str) -> list[int]:
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=True)
    return list(rendered["input_ids"])


def _hf_greedy(model: Any, ids: list[int]) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=NEW_TOKENS, do_sample=False, top_p=None, top_k=None, temperature=None)
    return [int(t) for t in out[0, len(ids):]]


def _llama_greedy(llm: Any, ids: list[int]) -> list[int]:
    out: list[int] = []
    for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
        out.append(int(token))
        if token == llm.token_eos() or len(out) >= NEW_TOKENS:
            break
    return out


def _hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.asarray(model(torch.tensor([ids])).logits[0].float().numpy())


def _llama_logits(llm: Any, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def test_f16_export_generates_exactly_transformers_greedy_tokens(reference: dict[str, Any],
                                                                 exports: dict[str, Path]) -> None:
    with _llama(exports["f16"]) as llm:
        for prompt, (ids, expected) in reference.items():
            assert len(expected) >= 8
            assert _llama_greedy(llm, ids) == expected, prompt


def test_q8_0_export_matches_transformers_within_quantization_error(embedded: tuple[Path, Any, Any],
                                                                    reference: dict[str, Any],
                                                                    exports: dict[str, Path]) -> None:
    model = embedded[1]
    checked = 0
    with _llama(exports["q8_0"], logits_all=True) as llm:
        for prompt, (ids, continuation) in reference.items():
            sequence = ids + continuation
            positions = slice(len(ids) - 1, len(sequence) - 1)  # the logits that predicted the continuation
            ref, got = _hf_logits(model, sequence)[positions], _llama_logits(llm, sequence)[positions]
            chosen = np.array(sequence[len(ids):])
            # Q8_0 weights, and llama.cpp's CPU kernels quantize activations too; how much that moves a logit
            # depends on the kernels the CPU gets. Measured max |diff| / mean |diff| / max |logit|: < 2.0 with
            # AVX-512; 2.39 / 0.50 / 31.8 on an AVX2-only EPYC. A broken export (a missed Q/K permutation, wrong
            # tensor names) is off by about the logits' own scale, so the bounds are relative to it.
            diff = np.abs(got - ref)
            assert float(diff.max()) < 0.1 * float(np.abs(ref).max()), (prompt, float(diff.max()))
            assert float(diff.mean()) < 0.75, (prompt, float(diff.mean()))
            top2 = np.sort(ref, axis=1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) > 1.5
            assert (got.argmax(axis=1)[clear] == chosen[clear]).all(), prompt
            top3 = np.argsort(got, axis=1)[:, -3:]
            assert all(token in row for token, row in zip(chosen, top3, strict=True)), prompt
            checked += int(clear.sum())
    assert checked >= 10  # the exact-agreement condition was not vacuous


def test_export_carries_the_tokenizer_and_metadata(embedded: tuple[Path, Any, Any], exports: dict[str, Path]) -> None:
    import gguf

    _dir, _model, tokenizer = embedded
    reader = gguf.GGUFReader(exports["q8_0"])
    fields = {name: reader.fields[name].contents() for name in (
        "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template",
        "tokenizer.ggml.add_bos_token", "general.file_type", "llama.attention.head_count_kv", "llama.context_length")}
    assert fields["tokenizer.ggml.bos_token_id"] == tokenizer.bos_token_id == 1
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id == 2
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    assert (fields["llama.attention.head_count_kv"], fields["llama.context_length"]) == (3, 8192)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert "output.weight" not in types  # tied embeddings: llama.cpp reuses token_embd
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    with _llama(exports["q8_0"]) as llm:
        for text in PROMPTS + ["  12345 + 678 = ?\n\n it's 3.14!"]:
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == tokenizer(text)["input_ids"], text
            rendered = tokenizer.decode(_ids(tokenizer, text))
            assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == _ids(tokenizer, text)


def _perturbed_copy(source: Path, target: Path) -> Path:
    """``source`` with seeded noise on every q/k projection (which the export must permute), saved as bfloat16."""
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir()
    for item in source.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.name != "ponder-cache.json":
            shutil.copy(item, target / item.name)
    weights = load_file(str(source / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for name, tensor in weights.items():
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            tensor += torch.randn(tensor.shape, generator=generator) * tensor.std() * 0.5
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, str(target / "model.safetensors"),
              metadata={"format": "pt"})
    return target


def test_a_changed_weight_shows_up_in_llama_cpp(embedded: tuple[Path, Any, Any], exports: dict[str, Path],
                                                tmp_path: Path) -> None:
    from ponder.models.gguf_cache import load_model_dir

    directory, _model, tokenizer = embedded
    changed = _perturbed_copy(directory, tmp_path / "changed")
    started = time.perf_counter()
    out = export_gguf(changed, tmp_path / "changed.gguf", "f16")
    assert time.perf_counter() - started < 60
    model, _tok = load_model_dir(changed)
    ids = _ids(tokenizer, PROMPTS[0])
    ref = _hf_logits(model.float().eval(), ids)[-1]
    with _llama(out, logits_all=True) as llm:
        got = _llama_logits(llm, ids)[-1]
    with _llama(exports["f16"], logits_all=True) as llm:
        before = _llama_logits(llm, ids)[-1]
    assert float(np.abs(got - ref).max()) < 0.15  # the changed weights, permuted right
    assert float(np.abs(got - before).max()) > 1.0  # and they did change the model


def test_an_export_inside_its_model_directory_loads_back_with_its_chat_template(
        embedded: tuple[Path, Any, Any], exports: dict[str, Path], tmp_path: Path) -> None:
    """``ponder train``'s DIR/model.gguf as a base (``--base llamacpp:DIR/model.gguf``, STaR's later rounds): the
    tokenizer_config.json beside it (no chat template: transformers keeps that in chat_template.jinja) must not
    shadow the GGUF's template, or training refuses the base."""
    from ponder.models.gguf_cache import load_gguf

    directory, _model, tokenizer = embedded
    trained = tmp_path / "trained"
    trained.mkdir()
    for name in ("config.json", "tokenizer_config.json", "tokenizer.json"):
        shutil.copy(directory / name, trained / name)
    assert "chat_template" not in (trained / "tokenizer_config.json").read_text()
    shutil.copy(exports["f16"], trained / "model.gguf")
    _loaded, loaded_tokenizer, cached = load_gguf(trained / "model.gguf", tmp_path / "cache")
    assert not cached and loaded_tokenizer.chat_template == tokenizer.chat_template
