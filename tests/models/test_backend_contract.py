"""One behavioural contract, run against every in-process backend: scripted, llamacpp and transformers.

The real backends (SmolLM2-135M through llama.cpp and through transformers) are ``integration`` params:
``pytest -m "not integration"`` runs the contract against the scripted model only.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from testkit import drain_stream

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.models.base import BaseBackend, GenerationParams, Message, ModelBackend
from ponder.models.gguf_cache import find_embedded_gguf
from ponder.models.scripted import ScriptedModel

QUESTION: list[Message] = [{"role": "user", "content": "What is 2+2?"}]
COUNT: list[Message] = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STORY: list[Message] = [{"role": "user", "content": "Write a long story about a dragon."}]

BACKENDS = [
    pytest.param("scripted", id="scripted"),
    pytest.param("llamacpp", id="llamacpp", marks=pytest.mark.integration),
    pytest.param("transformers", id="transformers", marks=pytest.mark.integration),
]


def _threads() -> int:
    """Half the cores, at most 4: llama.cpp threads on every core crawl when the CPU is shared."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _bundled_gguf() -> Path:
    try:
        return find_embedded_gguf()
    except ConfigError as exc:
        pytest.skip(str(exc))


def _scripted_reply(messages: list[Message], params: GenerationParams) -> str:
    last = messages[-1]["content"]
    if "count" in last.lower():
        return "1, 2, 3, 4, 5, 6, 7, 8, 9, 10"
    return f"You asked: {last} Let me think about it step by step; the answer is 4."


@pytest.fixture(scope="module")
def scripted_backend() -> BaseBackend:
    return ScriptedModel(_scripted_reply)


@pytest.fixture(scope="module")
def llamacpp_backend() -> BaseBackend:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'ponder[server]')")
    from ponder.models.llamacpp import LlamaCppBackend

    return LlamaCppBackend.load(_bundled_gguf(), n_ctx=2048, n_threads=_threads())


@pytest.fixture(scope="module")
def transformers_backend(tmp_path_factory: pytest.TempPathFactory) -> BaseBackend:
    pytest.importorskip("transformers")
    from ponder.models.spec import parse_spec
    from ponder.models.transformers_backend import TransformersBackend

    _bundled_gguf()
    cache_dir = tmp_path_factory.mktemp("ponder-cache")
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before the per-test config guard
        mp.setenv("PONDER_CONFIG", str(cache_dir / "no-such-ponder.toml"))
        settings = load_settings(cache_dir=cache_dir, device="cpu", dtype="auto")
    return TransformersBackend.from_settings(parse_spec("transformers"), settings)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> BaseBackend:
    return request.getfixturevalue(f"{request.param}_backend")


def _is_real(backend: BaseBackend) -> bool:
    return backend.real


def test_protocol_members_are_present_and_truthful(backend: BaseBackend, request: pytest.FixtureRequest) -> None:
    kind = request.node.callspec.params["backend"]
    assert isinstance(backend, ModelBackend) and backend.backend_name == kind
    caps = backend.capabilities
    assert caps.batched_decoding is (kind != "scripted") and caps.streaming
    assert caps.context_window == {"scripted": None, "llamacpp": 2048, "transformers": 8192}[kind]
    stream = backend.stream(STORY, GenerationParams(max_tokens=8))
    pieces, completion = drain_stream(stream)
    assert len(pieces) > 1 and "".join(pieces) == completion.text  # streamed as decoded, not all at once
    [c] = backend.generate(QUESTION, GenerationParams(max_tokens=2, logprobs=True))
    assert (c.logprob is not None) is caps.logprobs
    if _is_real(backend):  # the tokenizer and chat template count exactly what generate sends
        assert backend.count_tokens(QUESTION) == c.prompt_tokens
    else:
        assert backend.count_tokens(QUESTION) == len(QUESTION[0]["content"].split()) + 4
    assert backend.count_tokens(STORY + QUESTION) > backend.count_tokens(QUESTION)


def test_stop_sequence_is_honoured(backend: BaseBackend) -> None:
    [full] = backend.generate(COUNT, GenerationParams(max_tokens=12))
    assert "4" in full.text, f"the prompt should make the model count past 4: {full.text!r}"
    [cut] = backend.generate(COUNT, GenerationParams(max_tokens=12, stop=["4"]))
    assert "4" not in cut.text
    assert cut.text == full.text[: full.text.index("4")]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


def test_n_returns_n_completions(backend: BaseBackend) -> None:
    params = GenerationParams(max_tokens=6, temperature=0.8, n=3, seed=3)
    completions = backend.generate(QUESTION, params)
    assert len(completions) == 3
    assert all(c.text and c.completion_tokens > 0 for c in completions)
    if _is_real(backend):  # fixed seed: deterministic, so not flaky
        assert len({c.text for c in completions}) > 1, "sampled completions should differ"
    assert len(backend.generate(QUESTION, GenerationParams(max_tokens=4, n=3))) == 3


def test_same_seed_reproduces_samples(backend: BaseBackend) -> None:
    params = GenerationParams(max_tokens=6, temperature=0.8, n=2, seed=11)
    first = backend.generate(QUESTION, params)
    again = backend.generate(QUESTION, params)
    assert [c.text for c in again] == [c.text for c in first]


def test_max_tokens_gives_length(backend: BaseBackend) -> None:
    [c] = backend.generate(STORY, GenerationParams(max_tokens=3))
    assert c.finish_reason == "length"
    assert 0 < c.completion_tokens <= 3
    assert c.text


def test_usage_is_plausible(backend: BaseBackend) -> None:
    [c] = backend.generate(QUESTION, GenerationParams(max_tokens=8))
    assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 8
    assert c.finish_reason in ("stop", "length")
    assert c.logprob is None
    [longer] = backend.generate(STORY + [{"role": "user", "content": "Make it scary."}],
                                GenerationParams(max_tokens=1))
    assert longer.prompt_tokens > c.prompt_tokens


def test_batch_keeps_order(backend: BaseBackend) -> None:
    params = GenerationParams(max_tokens=6)
    batch = backend.generate_batch([QUESTION, COUNT], params)
    assert [len(r) for r in batch] == [1, 1]
    assert batch[0][0].text == backend.generate(QUESTION, params)[0].text
    assert batch[1][0].text == backend.generate(COUNT, params)[0].text
    assert batch[0][0].text != batch[1][0].text


def test_greedy_is_deterministic(backend: BaseBackend) -> None:
    params = GenerationParams(max_tokens=6, n=2)
    first = backend.generate(QUESTION, params)
    second = backend.generate(QUESTION, params)
    assert len({c.text for c in first + second}) == 1


def test_option_logprobs_are_next_token_probabilities(backend: BaseBackend) -> None:
    assert backend.capabilities.option_logprobs
    options = ["4", "5", "The"]
    scored = backend.option_logprobs(QUESTION, options)
    assert len(scored.logprobs) == 3 and all(-1e4 <= v <= 0 for v in scored.logprobs)
    assert sum(2.718281828459045 ** v for v in scored.logprobs) <= 1 + 1e-6
    assert scored.prompt_tokens == backend.count_tokens(QUESTION)
    if _is_real(backend):  # the greedy first token is the likeliest option when it is one of them
        [c] = backend.generate(QUESTION, GenerationParams(max_tokens=1, temperature=0, logprobs=True))
        mine = backend.option_logprobs(QUESTION, [c.text, "zebra"]).logprobs
        assert mine[0] == pytest.approx(c.logprob, abs=1e-3) and mine[0] > mine[1]
