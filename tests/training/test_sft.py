"""``ponder train`` on the real embedded model: a few optimizer steps change the weights; the result reloads and
generates; LoRA merges; resume continues from the newest checkpoint. Tiny data (short conversations, max_length
128) keeps each test to seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ponder.core.errors import ConfigError, DataError
from ponder.models.base import GenerationParams
from ponder.models.transformers_backend import TransformersBackend
from ponder.training.examples import ChatTurn, SFTExample, data_sha256, write_examples
from ponder.training.sft import TRAIN_RECORD, TrainConfig, train_sft
from ponder.training.sft_base import load_base

pytestmark = pytest.mark.integration

REPLY = "Thought: I need to compute 17 * 3.\nAction: calculator\nAction Input: 17 * 3"


def _data(path: Path, n: int = 4) -> Path:
    examples = [SFTExample(messages=[ChatTurn(role="system", content="Use the calculator."),
                                     ChatTurn(role="user", content=f"Question: what is 17 * 3 (case {i})?"),
                                     ChatTurn(role="assistant", content=REPLY)],
                           metadata={"source": "test", "task_id": str(i)}) for i in range(n)]
    write_examples(path, examples)
    return path


def _config(tmp_path: Path, **kw: object) -> TrainConfig:
    base = {"data": _data(tmp_path / "d.jsonl"), "out": tmp_path / "model", "max_steps": 2, "grad_accum": 1,
            "max_length": 128, "learning_rate": 1e-4, "gguf": "none", "save_steps": 1}
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _weights(directory: Path) -> dict[str, object]:
    return load_file(str(directory / "model.safetensors"))


@pytest.fixture(scope="module")
def base_weights() -> dict[str, object]:
    model, _tok = load_base("embedded")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_full_training_changes_weights_reloads_and_generates(tmp_path: Path, base_weights: dict) -> None:
    config = _config(tmp_path)
    result = train_sft(config, quiet=True)
    assert result.steps == 2 and result.examples == 4 and result.stopped_by == "max_steps"
    assert result.train_tokens > 0 and result.tokens_per_second > 0
    trained = _weights(config.out)
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not trained[key].equal(base_weights[key])  # type: ignore[union-attr]
    record = json.loads((config.out / TRAIN_RECORD).read_text())
    assert record["data_sha256"] == data_sha256(config.data)
    assert record["config"]["max_steps"] == 2 and record["result"]["steps"] == 2
    assert (config.out / "checkpoints" / "checkpoint-2").is_dir()
    from ponder.models.gguf_cache import load_model_dir

    model, tokenizer = load_model_dir(config.out)
    assert "{% generation %}" not in (tokenizer.chat_template or "")  # the saved model keeps its own template
    backend = TransformersBackend(model, tokenizer, spec=f"transformers:{config.out}")
    out = backend.generate([{"role": "user", "content": "Question: what is 17 * 3?"}],
                           GenerationParams(max_tokens=12, temperature=0.0))
    assert out[0].text.strip()  # it loads as a ponder model and generates


def test_lora_trains_an_adapter_and_saves_it_merged(tmp_path: Path, base_weights: dict) -> None:
    config = _config(tmp_path, method="lora", learning_rate=5e-3)
    result = train_sft(config, quiet=True)
    assert result.steps == 2
    assert not (config.out / "adapter_config.json").exists()  # merged into a plain model directory
    trained = _weights(config.out)
    assert set(trained) <= set(base_weights)
    key = "model.layers.3.mlp.down_proj.weight"
    assert not trained[key].equal(base_weights[key])  # type: ignore[union-attr]


def test_resume_continues_from_the_newest_checkpoint(tmp_path: Path) -> None:
    first = _config(tmp_path, max_steps=1)
    train_sft(first, quiet=True)
    with pytest.raises(ConfigError, match="already holds a trained model"):
        train_sft(first, quiet=True)
    again = _config(tmp_path, max_steps=2, resume=True)
    result = train_sft(again, quiet=True)
    assert result.steps == 2  # one more step after checkpoint-1, not two from scratch
    assert (again.out / "checkpoints" / "checkpoint-2").is_dir()


def test_data_without_assistant_turns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    write_examples(path, [SFTExample(messages=[ChatTurn(role="system", content="s"),
                                               ChatTurn(role="user", content="u")])])
    with pytest.raises(DataError, match="no training conversations"):
        train_sft(TrainConfig(data=path, out=tmp_path / "m", gguf="none"), quiet=True)


def test_examples_cut_before_their_assistant_turn_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    write_examples(path, [SFTExample(messages=[ChatTurn(role="system", content="word " * 200),
                                               ChatTurn(role="user", content="Question: q"),
                                               ChatTurn(role="assistant", content=REPLY)])])
    with pytest.raises(DataError, match="raise --max-length"):
        train_sft(TrainConfig(data=path, out=tmp_path / "m", gguf="none", max_length=32), quiet=True)


def test_loss_covers_the_trajectorys_assistant_turns_only(tmp_path: Path) -> None:
    """Not the system prompt, not the few-shot demo replies, not the question or the observations."""
    from ponder.core.settings import load_settings
    from ponder.training.gold import gold_examples
    from ponder.training.sft import build_trainer, load_dataset_rows

    path = tmp_path / "gold.jsonl"
    examples, _ = gold_examples(Path(load_settings().data_dir) / "gsm8k" / "train.jsonl", "react", limit=1)
    write_examples(path, examples)
    config = TrainConfig(data=path, out=tmp_path / "m", gguf="none")
    model, tokenizer = load_base("embedded")
    trainer, _budget, _progress = build_trainer(config, model, tokenizer, load_dataset_rows(config), False, True)
    row = trainer.train_dataset[0]
    trained = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    replies = [t.content + "<|im_end|>" for t in examples[0].messages if t.role == "assistant"]
    assert trained == "".join(replies[-3:])  # the trajectory's three replies; the demo's two are prompt
    assert "3 * 12 - 5" not in trained and "Observation" not in trained


def test_resume_with_other_data_is_refused(tmp_path: Path) -> None:
    first = _config(tmp_path, max_steps=1)
    train_sft(first, quiet=True)
    (first.out / "ponder-train.json").unlink()  # as if the run had stopped before finishing
    other = _data(tmp_path / "other.jsonl", n=3)
    with pytest.raises(ConfigError, match="data_sha256 differ"):
        train_sft(_config(tmp_path, data=other, resume=True), quiet=True)
