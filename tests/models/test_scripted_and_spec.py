import json

import pytest

from ponder.core.errors import ConfigError, DataError, RealModelCallError
from ponder.core.settings import load_settings
from ponder.models.base import BaseBackend, GenerationParams, ModelBackend, truncate_at_stop
from ponder.models.scripted import ScriptedModel, ScriptExhaustedError
from ponder.models.spec import ModelSpec, load_model, parse_spec


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("embedded", ModelSpec("embedded")),
        ("transformers", ModelSpec("transformers")),
        ("transformers:/m/x.gguf", ModelSpec("transformers", path="/m/x.gguf")),
        ("openai:gpt-4o-mini", ModelSpec("openai", model="gpt-4o-mini")),
        ("openai:Qwen/Qwen2.5-7B@http://gpu:8000/v1", ModelSpec("openai", "Qwen/Qwen2.5-7B", "http://gpu:8000/v1")),
        ("openai:a@b@http://h:1/v1", ModelSpec("openai", "a@b", "http://h:1/v1")),
        ("scripted:s.jsonl", ModelSpec("scripted", path="s.jsonl")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed
    assert str(parse_spec(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "bad model spec"), ("gpt4", "bad model spec"), ("openai:", "missing model name"),
     ("openai:m@localhost:8000", "must start with http"), ("scripted:", "needs a JSONL file"),
     ("embedded:x", "takes no argument")],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec)


def test_scripted_honours_stop_and_max_tokens():
    m = ScriptedModel(["Action: x\nObservation: fake", "one two three four"])
    (c,) = m.generate([{"role": "user", "content": "hi"}], GenerationParams(stop=["\nObservation:"]))
    assert c.text == "Action: x" and c.finish_reason == "stop"
    (c,) = m.generate([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=2))
    assert c.text == "one two" and c.finish_reason == "length" and c.completion_tokens == 2
    assert isinstance(m, ModelBackend)


def test_scripted_n_and_function_and_exhaustion():
    m = ScriptedModel(lambda messages, params: f"echo {messages[-1]['content']}")
    out = m.generate([{"role": "user", "content": "x"}], GenerationParams(n=3))
    assert [c.text for c in out] == ["echo x"] * 3
    m = ScriptedModel(["a"])
    m.generate([{"role": "user", "content": "x"}], GenerationParams())
    with pytest.raises(ScriptExhaustedError):
        m.generate([{"role": "user", "content": "x"}], GenerationParams())


def test_scripted_batch_keeps_order():
    m = ScriptedModel(lambda messages, params: messages[-1]["content"].upper())
    out = m.generate_batch([[{"role": "user", "content": w}] for w in "abc"], GenerationParams())
    assert [o[0].text for o in out] == ["A", "B", "C"]


def test_scripted_from_jsonl(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps("Final Answer: 1") + "\n\n" + json.dumps({"text": "Final Answer: 2"}) + "\n")
    m = load_model(f"scripted:{path}", load_settings())
    texts = [m.generate([{"role": "user", "content": "q"}], GenerationParams())[0].text for _ in range(2)]
    assert texts == ["Final Answer: 1", "Final Answer: 2"]
    (tmp_path / "bad.jsonl").write_text('{"text": 3}\n')
    with pytest.raises(DataError, match="bad.jsonl:1"):
        ScriptedModel.from_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(ConfigError, match="not found"):
        ScriptedModel.from_jsonl(tmp_path / "missing.jsonl")


def test_truncate_at_stop_picks_earliest():
    assert truncate_at_stop("a STOP b END", ["END", "STOP"]) == ("a ", True)
    assert truncate_at_stop("abc", ["x", ""]) == ("abc", False)


def test_guard_blocks_real_models_in_unit_tests():
    class FakeReal(BaseBackend):
        spec = "fake-real"

        def generate(self, messages, params):
            self.check_allowed()
            return []

    with pytest.raises(RealModelCallError, match="unit tests must use the scripted model"):
        FakeReal().generate([], GenerationParams())
