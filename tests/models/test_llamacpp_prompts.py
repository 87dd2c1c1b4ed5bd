"""Single-sequence decoding and the on-disk prompt cache of the llama.cpp backend (real SmolLM2 GGUF).

The tests under "no model" need neither llama-cpp-python nor the model (the modules import ``llama_cpp``
lazily); the others get it through the ``backend`` or ``llama_cpp`` fixtures (conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ponder.models import llamacpp_loader
from ponder.models.base import GenerationParams, Message
from ponder.models.llamacpp import LlamaCppBackend
from ponder.models.llamacpp_decode import common_prefix, pick_token
from ponder.models.llamacpp_prompts import PromptCache, model_fingerprint

SYSTEM = "You are a careful assistant. " + " ".join(f"Rule {i}: answer briefly and check your work." for i in range(12))


def _conversation(question: str) -> list[Message]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def backend(llamacpp_backend: LlamaCppBackend) -> LlamaCppBackend:
    return llamacpp_backend


@pytest.fixture
def cache_with_one_entry(backend: LlamaCppBackend, tmp_path: Path) -> Iterator[PromptCache]:
    """A prompt cache the backend uses, holding the state of one evaluated conversation ("Name a color.")."""
    cache = PromptCache(tmp_path, min_new_tokens=64, min_gain=16)
    backend.prompt_cache = cache
    try:
        _fresh_decoder(backend)
        backend.generate(_conversation("Name a color."), GenerationParams(temperature=0, max_tokens=4))
        assert cache.stats["saved"] == 1 and len(cache.entries()) == 1
        yield cache
    finally:
        backend.prompt_cache = None


class _Prefill:
    """The engine's ``last_prefill`` record, read after each call."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self._engine = backend._engine()

    @property
    def last_prefill(self) -> dict[str, int]:
        return self._engine.stats["last_prefill"]


def _fresh_decoder(backend: LlamaCppBackend) -> _Prefill:
    """What a new process has: an engine whose slots hold nothing."""
    backend._engine().forget()
    return _Prefill(backend)


# ---------------------------------------------------------------- no model


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([7, 8], [7, 8]) == 2


def test_pick_token_greedy_seeded_and_nucleus() -> None:
    logits = np.array([0.0, 5.0, 1.0, 4.9], dtype=np.float32)
    greedy = GenerationParams(temperature=0)
    assert pick_token(logits, greedy, np.random.default_rng(0)) == (1, 0.0)
    hot = GenerationParams(temperature=1.0, seed=3)
    draws = [pick_token(logits, hot, np.random.default_rng(7))[0] for _ in range(3)]
    assert len(set(draws)) == 1  # same seed, same draw
    many = {pick_token(logits, hot, np.random.default_rng(s))[0] for s in range(200)}
    assert many >= {1, 3}  # both near-equal logits get sampled
    nucleus = GenerationParams(temperature=1.0, top_p=0.5)
    assert {pick_token(logits, nucleus, np.random.default_rng(s))[0] for s in range(100)} == {1}
    token, logprob = pick_token(logits, GenerationParams(temperature=0, logprobs=True), np.random.default_rng(0))
    expected = 5.0 - np.log(np.exp(logits.astype(np.float64)).sum())
    assert token == 1 and logprob == pytest.approx(expected, abs=1e-5)


def test_fingerprint_changes_with_kv_layout_and_file(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    lc = SimpleNamespace(__version__="1.0")
    base = SimpleNamespace(flash_attn_type=0, type_k=1, type_v=1)
    key = model_fingerprint(model, lc, base)
    assert key == model_fingerprint(model, lc, SimpleNamespace(flash_attn_type=0, type_k=1, type_v=1))
    assert key != model_fingerprint(model, lc, SimpleNamespace(flash_attn_type=1, type_k=1, type_v=1))
    assert key != model_fingerprint(model, SimpleNamespace(__version__="2.0"), base)
    model.write_bytes(b"GGUF" + bytes(range(256)) * 11)
    assert key != model_fingerprint(model, lc, base)


def test_busy_cores_sees_a_spinning_process() -> None:
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert llamacpp_loader.busy_cores(0.3) >= 0.5
    finally:
        spinner.kill()
        spinner.wait()


# ---------------------------------------------------------------- real model

integration = pytest.mark.integration


@integration
def test_next_prompt_evaluates_only_its_new_tokens(backend: LlamaCppBackend) -> None:
    params = GenerationParams(temperature=0, max_tokens=8)
    decoder = _fresh_decoder(backend)
    first = backend.generate(_conversation("What is 2+2?"), params)[0]
    full = len(backend._prompt_ids(_conversation("What is 2+2?")))
    assert decoder.last_prefill == {"reused": 0, "copied": 0, "restored": 0, "evaluated": full}
    follow_up = _conversation("What is 2+2?") + [{"role": "assistant", "content": first.text},
                                                  {"role": "user", "content": "And 3+3?"}]
    backend.generate(follow_up, params)
    assert decoder.last_prefill["reused"] >= full - 2
    assert decoder.last_prefill["evaluated"] < len(backend._prompt_ids(follow_up)) - full + 3


@integration
def test_saved_prefix_is_restored_by_a_new_process(backend: LlamaCppBackend,
                                                   cache_with_one_entry: PromptCache) -> None:
    cache = cache_with_one_entry
    params = GenerationParams(temperature=0, max_tokens=12, logprobs=True)
    try:
        question = _conversation("What is the capital of France?")
        prompt = backend._prompt_ids(question)
        shared = common_prefix(list(cache.entries()[0].tokens), prompt)
        assert shared > 64

        decoder = _fresh_decoder(backend)
        with_cache = backend.generate(question, params)[0]
        assert decoder.last_prefill["restored"] == shared
        assert decoder.last_prefill["evaluated"] == len(prompt) - shared
        assert cache.stats["restored"] == 1

        backend.prompt_cache = None
        decoder = _fresh_decoder(backend)
        without = backend.generate(question, params)[0]
        assert decoder.last_prefill == {"reused": 0, "copied": 0, "restored": 0, "evaluated": len(prompt)}
    finally:
        backend.prompt_cache = None
    assert with_cache.logprob is not None and without.logprob is not None
    assert abs(with_cache.logprob - without.logprob) < 0.05
    assert with_cache.text == without.text


@integration
def test_corrupted_entry_is_deleted_and_the_prompt_evaluated(backend: LlamaCppBackend,
                                                             cache_with_one_entry: PromptCache) -> None:
    cache = cache_with_one_entry
    (entry,) = cache.entries()
    data = bytearray(entry.state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.state.write_bytes(bytes(data))
    decoder = _fresh_decoder(backend)
    out = backend.generate(_conversation("Name an animal."), GenerationParams(temperature=0, max_tokens=4))[0]
    assert cache.stats["rejected"] == 1
    assert decoder.last_prefill["restored"] == 0
    assert not entry.state.exists() and not entry.meta.exists()
    assert cache.stats["saved"] == 2  # the evaluated prompt replaced it
    assert out.completion_tokens > 0


@integration
def test_only_the_newest_entries_are_kept(backend: LlamaCppBackend, tmp_path: Path) -> None:
    cache = PromptCache(tmp_path, max_entries=2, min_new_tokens=8, min_gain=10_000)
    params = GenerationParams(temperature=0, max_tokens=1)
    backend.prompt_cache = cache
    try:
        for topic in ("cats", "boats", "trees"):
            _fresh_decoder(backend)
            backend.generate([{"role": "user", "content": f"Tell me about {topic}."}], params)
            time.sleep(0.01)
    finally:
        backend.prompt_cache = None
    assert cache.stats["saved"] == 3
    assert len(cache.entries()) == 2
    assert len(list(tmp_path.glob("*.kv"))) == 2
    newest = cache.entries()[0]
    small = PromptCache(tmp_path, max_bytes=newest.size)  # room for one state only: the newest stays
    small._evict()
    assert small.entries() == [newest]


@integration
def test_settings_switch_the_cache_on_and_off(gguf: Path, tmp_path: Path, llama_cpp: None) -> None:
    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import load_settings

    spec = ModelSpec(kind="llamacpp")
    on = LlamaCppBackend.from_settings(spec, load_settings(cache_dir=tmp_path, llamacpp_n_ctx=2048))
    off = LlamaCppBackend.from_settings(spec, load_settings(cache_dir=tmp_path, llamacpp_prompt_cache=False,
                                                            llamacpp_n_ctx=2048))
    assert on.prompt_cache is not None and on.prompt_cache.directory.is_relative_to(tmp_path / "llamacpp")
    assert off.prompt_cache is None
    assert on._loaded is off._loaded  # one model, two policies


@integration
def test_second_ponder_run_restores_the_agent_prompt(gguf: Path, tmp_path: Path, llama_cpp: None) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PONDER_OUT_DIR": str(tmp_path / "runs")}
    env.pop("PONDER_FORBID_REAL_MODEL", None)
    command = [sys.executable, "-m", "ponder.cli", "run", "What is 2+3?", "--model", "llamacpp", "--max-steps", "1",
               "--max-tokens", "1", "--verbose", "--json"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "prompt cache: saved" in first.stderr and "prompt cache: restored" not in first.stderr
    command[4] = "What is 7 times 6?"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "prompt cache: restored" in second.stderr
    assert list((tmp_path / "cache" / "ponder" / "llamacpp" / "prompts").glob("*/*.kv"))
