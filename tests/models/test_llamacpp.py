"""The llama.cpp backend: checks without generation, and integration tests on SmolLM2-135M.

The unit tests at the top need neither llama-cpp-python nor the model (``ponder.models.llamacpp`` imports
``llama_cpp`` lazily); the others ask for it through the ``llama_cpp`` or ``backend`` fixtures (conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError, MissingExtraError, ModelError, RealModelCallError
from ponder.core.model_spec import ModelSpec
from ponder.core.settings import load_settings
from ponder.models import llamacpp
from ponder.models.base import GenerationParams, Message
from ponder.models.llamacpp import LlamaCppBackend

QUESTION: list[Message] = [{"role": "user", "content": "What is 2+2?"}]
COUNT: list[Message] = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
PROMPTS: list[list[Message]] = [
    QUESTION,
    COUNT,
    [{"role": "user", "content": "Name three colors."}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
]
SPEC = ModelSpec(kind="llamacpp")


@pytest.fixture(scope="module")
def backend(llamacpp_backend: LlamaCppBackend) -> LlamaCppBackend:
    return llamacpp_backend


# ---------------------------------------------------------------- no llama.cpp, no model


def test_import_is_lazy() -> None:
    code = ("import sys, ponder.models.llamacpp; "
            "assert 'llama_cpp' not in sys.modules and 'torch' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model path not found"):
        LlamaCppBackend.load(tmp_path / "nope.gguf", n_ctx=256, n_threads=1)
    with pytest.raises(ConfigError, match="not a file"):
        LlamaCppBackend.load(tmp_path, n_ctx=256, n_threads=1)


def test_non_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 definitely a zip file")
    with pytest.raises(ConfigError, match="is not a GGUF file"):
        LlamaCppBackend.load(fake, n_ctx=256, n_threads=1)


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ponder\[server\]'") as info:
        LlamaCppBackend.from_settings(SPEC, load_settings())
    assert info.value.package == "llama-cpp-python"


def test_physical_cores() -> None:
    assert 1 <= llamacpp.physical_cores() <= (os.cpu_count() or 1)


# ---------------------------------------------------------------- llama.cpp loads the model, no generation


def test_truncated_gguf_is_a_model_error(tmp_path: Path, gguf: Path, llama_cpp: None) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[:4096])
    with pytest.raises(ModelError, match="llama.cpp could not load"):
        LlamaCppBackend.load(cut, n_ctx=256, n_threads=1)


def test_generate_is_refused_in_unit_tests(backend: LlamaCppBackend) -> None:
    with pytest.raises(RealModelCallError):
        backend.generate(QUESTION, GenerationParams())
    with pytest.raises(RealModelCallError):
        backend.generate_batch([QUESTION], GenerationParams())


def test_load_info_and_settings(gguf: Path, llama_cpp: None) -> None:
    settings = load_settings(llamacpp_threads=1, llamacpp_n_ctx=1024, llamacpp_prompt_cache=False)
    b = LlamaCppBackend.from_settings(SPEC, settings)
    info = b.load_info
    assert info["backend"] == "llamacpp" and b.backend_name == "llamacpp"
    assert info["path"] == str(gguf)
    assert info["n_threads"] == 1 and info["n_ctx"] == 1024 == b.llama.n_ctx()
    assert info["load_seconds"] > 0
    assert b.spec == "llamacpp" and b.capabilities.context_window == 1024 and b.capabilities.batched_decoding
    assert b.count_tokens(QUESTION) > len(QUESTION[0]["content"].split())  # the chat template's tokens count too
    default = LlamaCppBackend.from_settings(SPEC, load_settings(llamacpp_prompt_cache=False))
    # default: physical cores minus those busy at load time
    assert 1 <= default.load_info["n_threads"] <= llamacpp.physical_cores()
    assert default.load_info["n_ctx"] == llamacpp.DEFAULT_N_CTX


def test_same_file_shares_one_llama(backend: LlamaCppBackend, gguf: Path) -> None:
    other = LlamaCppBackend.load(gguf, n_ctx=2048, n_threads=backend.load_info["n_threads"], spec="other")
    assert other.llama is backend.llama
    assert other.load_info["reused"] is True
    assert other.spec == "other"
    smaller = LlamaCppBackend.load(gguf, n_ctx=512, n_threads=backend.load_info["n_threads"])
    assert smaller.llama is not backend.llama


# ---------------------------------------------------------------- integration (real model)


@pytest.mark.integration
def test_logprobs(backend: LlamaCppBackend) -> None:
    [short] = backend.generate(QUESTION, GenerationParams(max_tokens=2, logprobs=True))
    [longer] = backend.generate(QUESTION, GenerationParams(max_tokens=6, logprobs=True))
    assert isinstance(short.logprob, float) and short.logprob < 0
    assert longer.logprob is not None and longer.logprob <= short.logprob
    [plain] = backend.generate(QUESTION, GenerationParams(max_tokens=2))
    assert plain.logprob is None and plain.text == short.text


@pytest.mark.integration
def test_logprob_counts_only_kept_tokens(backend: LlamaCppBackend) -> None:
    [full] = backend.generate(COUNT, GenerationParams(max_tokens=12, logprobs=True))
    [cut] = backend.generate(COUNT, GenerationParams(max_tokens=12, stop=[", 3"], logprobs=True))
    assert cut.text == full.text[: full.text.index(", 3")] and cut.finish_reason == "stop"
    assert cut.logprob is not None and full.logprob is not None and cut.logprob > full.logprob


@pytest.mark.integration
def test_earliest_of_several_stops_wins(backend: LlamaCppBackend) -> None:
    [c] = backend.generate(COUNT, GenerationParams(max_tokens=24, stop=["7", "3", "never-appears"]))
    assert c.text.rstrip().endswith("2,") and "3" not in c.text and c.finish_reason == "stop"


@pytest.mark.integration
def test_sample_seeds_are_consecutive(backend: LlamaCppBackend) -> None:
    params = GenerationParams(max_tokens=8, temperature=0.9, n=3, seed=40)
    three = backend.generate(QUESTION, params)
    [second] = backend.generate(QUESTION, params.model_copy(update={"n": 1, "seed": 41}))
    assert second.text == three[1].text


@pytest.mark.integration
def test_concurrent_calls_match_sequential(backend: LlamaCppBackend) -> None:
    params = GenerationParams(max_tokens=12)
    sequential = [backend.generate(p, params)[0].text for p in PROMPTS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda p: backend.generate(p, params)[0].text, PROMPTS * 2))
    assert concurrent == sequential * 2


@pytest.mark.integration
def test_prompt_longer_than_context_is_a_model_error(gguf: Path, llama_cpp: None) -> None:
    tiny = LlamaCppBackend.load(gguf, n_ctx=64, n_threads=1)
    long: list[Message] = [{"role": "user", "content": "word " * (2 * tiny.llama.n_ctx())}]
    with pytest.raises(ModelError, match="llamacpp_n_ctx"):
        tiny.generate(long, GenerationParams(max_tokens=4))
    [c] = tiny.generate(QUESTION, GenerationParams(max_tokens=200))  # capped by the context
    assert c.prompt_tokens + c.completion_tokens <= tiny.llama.n_ctx()
