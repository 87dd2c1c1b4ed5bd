"""The model protocol: every backend class and wrapper has all of its members, and states them truthfully.

Real models are not run here (``test_backend_contract.py`` checks the real backends' capabilities against
what they do); these tests build the backends without weights or without a server.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ponder.chat.streaming import StreamingModel
from ponder.models.base import (
    BaseBackend,
    Completion,
    GenerationParams,
    Message,
    ModelBackend,
    ModelCapabilities,
    estimate_tokens,
)
from ponder.models.batching import MicroBatcher
from ponder.models.openai import OpenAIBackend
from ponder.models.scripted import ScriptedModel
from ponder.models.transformers_backend import TransformersBackend

CHAT: list[Message] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is two plus two, please?"},
]
MEMBERS = ("spec", "backend_name", "real", "capabilities", "load_info", "generate", "generate_batch", "stream",
           "count_tokens", "option_logprobs", "close")


def drain(stream):
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return pieces, done.value


def test_scripted_model_states_what_it_is() -> None:
    model = ScriptedModel(["Final Answer: 4"])
    assert isinstance(model, ModelBackend) and all(hasattr(model, m) for m in MEMBERS)
    assert (model.backend_name, model.real, dict(model.load_info)) == ("scripted", False, {})
    # no batching, no logprobs, unbounded context; scripted option scores (uniform unless given)
    assert model.capabilities == ModelCapabilities(streaming=True, option_logprobs=True)
    model.close()
    model.close()  # closing twice is fine


def test_scripted_context_window_and_token_count_are_deterministic() -> None:
    tiny = ScriptedModel(["ok"], context_window=12)
    assert tiny.capabilities.context_window == 12
    assert ScriptedModel(["ok"]).capabilities.context_window is None
    assert tiny.capabilities is not ScriptedModel(["ok"], context_window=99).capabilities  # per instance
    # words split on whitespace, plus 4 per message: (3 + 4) + (6 + 4)
    assert tiny.count_tokens(CHAT) == 17
    assert tiny.count_tokens([]) == 0
    assert tiny.count_tokens([{"role": "user", "content": "  spaced\n\tout  words "}]) == 3 + 4
    with pytest.raises(ValueError):
        ScriptedModel(["ok"], context_window=0)
    with pytest.raises(ValueError):  # frozen: the shared default of BaseBackend cannot be changed by accident
        tiny.capabilities.context_window = 3  # type: ignore[misc]
    assert tiny.capabilities.context_window == 12 and BaseBackend.capabilities.context_window is None


def test_base_backend_defaults() -> None:
    class Plain(BaseBackend):
        real = False

        def generate(self, messages, params):
            return [Completion(text="whole")] * params.n

    plain = Plain()
    assert isinstance(plain, ModelBackend)
    assert plain.capabilities == ModelCapabilities() and plain.capabilities.context_window is None
    assert plain.count_tokens(CHAT) == estimate_tokens(CHAT) == len(CHAT[0]["content"]) // 3 + 4 + len(
        CHAT[1]["content"]) // 3 + 4
    assert drain(plain.stream(CHAT, GenerationParams()))[0] == ["whole"]  # no streaming: the text at once
    assert plain.generate_batch([CHAT, CHAT], GenerationParams()) == [[Completion(text="whole")]] * 2
    plain.close()


def test_openai_backend_states_what_it_is() -> None:
    backend = OpenAIBackend("m", "http://127.0.0.1:9/v1", real=False)
    assert isinstance(backend, ModelBackend) and backend.backend_name == "openai"
    caps = backend.capabilities
    assert caps.streaming and caps.logprobs and not caps.batched_decoding and caps.context_window is None
    assert caps.option_logprobs  # until a server answers without log-probabilities (test_openai_backend.py)
    assert backend.count_tokens(CHAT) == estimate_tokens(CHAT)  # no tokenizer at hand: the estimate
    sized = OpenAIBackend("m", "http://127.0.0.1:9/v1", real=False, context_window=32768)
    assert sized.capabilities.context_window == 32768 and backend.capabilities.context_window is None
    backend.close()
    backend.close()


def test_transformers_backend_states_what_it_is() -> None:
    bare = TransformersBackend(None, None, spec="transformers")
    assert isinstance(bare, ModelBackend) and bare.backend_name == "transformers"
    assert bare.capabilities.batched_decoding and bare.capabilities.streaming and bare.capabilities.logprobs
    assert bare.capabilities.option_logprobs
    assert bare.capabilities.context_window is None  # no model: unknown
    fake_model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=8192), generation_config=None)
    assert TransformersBackend(fake_model, None).capabilities.context_window == 8192
    no_size = SimpleNamespace(config=SimpleNamespace(), generation_config=None)
    assert TransformersBackend(no_size, None).capabilities.context_window is None


def test_llamacpp_backend_class_declares_its_name() -> None:
    from ponder.models.llamacpp import LlamaCppBackend

    assert LlamaCppBackend.backend_name == "llamacpp"  # capabilities need a loaded model: test_llamacpp.py


@pytest.mark.parametrize("wrap", [lambda m: MicroBatcher(m, window=0.01), lambda m: StreamingModel(m, print)],
                         ids=["batcher", "streaming"])
def test_wrappers_implement_the_protocol_explicitly(wrap) -> None:
    inner = ScriptedModel(["one two three"] * 4, spec="scripted:x", context_window=64)
    wrapper = wrap(inner)
    assert isinstance(wrapper, ModelBackend)
    assert (wrapper.spec, wrapper.backend_name, wrapper.real) == ("scripted:x", "scripted", False)
    assert wrapper.capabilities is inner.capabilities and wrapper.load_info == inner.load_info
    assert wrapper.count_tokens(CHAT) == inner.count_tokens(CHAT)
    pieces, completion = drain(wrapper.stream(CHAT, GenerationParams()))
    assert pieces == ["one ", "two ", "three"] and completion.text == "one two three"
    assert wrapper.generate(CHAT, GenerationParams())[0].text == "one two three"
    assert [r[0].text for r in wrapper.generate_batch([CHAT, CHAT], GenerationParams())] == ["one two three"] * 2
    wrapper.close()
    assert len(inner.calls) == 4  # every call reached the backend
    with pytest.raises(AttributeError):
        wrapper.calls  # noqa: B018 - no forwarding beyond the protocol


def test_close_models_closes_and_forgets_every_cached_backend(tmp_path, monkeypatch):
    from ponder.core.settings import load_settings
    from ponder.models import spec as spec_module

    script = tmp_path / "s.jsonl"
    script.write_text('"Final Answer: 1"\n')
    closed: list[str] = []
    monkeypatch.setattr(ScriptedModel, "close", lambda self: closed.append(self.spec))
    monkeypatch.setattr(spec_module, "_CACHE", {})
    first = spec_module.load_model(f"scripted:{script}", load_settings())
    assert spec_module.load_model(f"scripted:{script}", load_settings()) is first  # cached
    spec_module.close_models()
    assert closed == [f"scripted:{script}"]
    assert spec_module.load_model(f"scripted:{script}", load_settings()) is not first  # loaded afresh
    spec_module.close_models()
    assert len(closed) == 2
