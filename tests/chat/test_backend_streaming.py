"""Real token streaming of the local backends: the streamed pieces add up to what ``generate`` returns.

The OpenAI backend's streaming is tested against a fake server in ``tests/models/test_openai_backend.py``.
"""

from __future__ import annotations

import pytest
from testkit import drain_stream

from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams
from ponder.models.spec import load_model

MESSAGES = [{"role": "user", "content": "Count from one to five in words."}]


@pytest.mark.integration
@pytest.mark.parametrize("spec", ["llamacpp", "transformers"])
def test_stream_matches_generate(spec: str) -> None:
    if spec == "llamacpp":
        pytest.importorskip("llama_cpp")
    model = load_model(spec, load_settings(llamacpp_threads=1))
    params = GenerationParams(max_tokens=24, stop=["five", "Five"], seed=0)
    [expected] = model.generate(MESSAGES, params)
    stream = model.stream(MESSAGES, params)
    pieces, completion = drain_stream(stream)
    assert len(pieces) > 1  # token by token, not the whole text at once
    assert "".join(pieces) == completion.text == expected.text
    assert completion.completion_tokens == expected.completion_tokens
    assert completion.finish_reason == expected.finish_reason


@pytest.mark.integration
@pytest.mark.parametrize("spec", ["llamacpp", "transformers"])
def test_closing_a_stream_early_releases_the_model(spec: str) -> None:
    if spec == "llamacpp":
        pytest.importorskip("llama_cpp")
    model = load_model(spec, load_settings(llamacpp_threads=1))
    params = GenerationParams(max_tokens=64)
    stream = model.stream(MESSAGES, params)
    next(stream)
    stream.close()  # what Ctrl-C does to the chat's stream
    [again] = model.generate(MESSAGES, GenerationParams(max_tokens=8))  # would deadlock if the lock were held
    assert again.completion_tokens > 0
