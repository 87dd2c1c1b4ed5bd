"""``ponder train`` / ``ponder export gold`` at the CLI: bad arguments are one line and exit 2; gold export writes
the data and its counts. (Training itself: tests/training/test_sft.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ponder.cli import main
from ponder.training.examples import iter_examples


def test_export_gold_writes_examples_and_counts(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gold.jsonl"
    assert main(["export", "gold", "--limit", "20", "--out", str(out), "-q"]) == 0
    examples = list(iter_examples(out))
    stats = json.loads(Path(f"{out}.stats.json").read_text())
    assert stats["read"] == 20 and stats["kept"] == len(examples) > 15
    assert stats["kept"] + sum(stats["dropped"].values()) == 20
    assert f"{stats['kept']} of 20 solutions converted" in capsys.readouterr().out
    assert all(e.metadata["source"] == "gold-react" for e in examples)


def test_export_gold_pal(tmp_path: Path) -> None:
    out = tmp_path / "pal.jsonl"
    assert main(["export", "gold", "--agent", "pal", "--limit", "5", "--out", str(out), "-q"]) == 0
    assert all(e.messages[-1].content.startswith("```python") for e in iter_examples(out))


def test_export_gold_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["export", "gold", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GSM8K training file not found" in err
    assert main(["export", "gold", "--agent", "cot"]) == 2


def test_train_bad_arguments_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n')
    cases = [
        (["--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "m")], "training data file not found"),
        (["--data", str(data), "--out", str(tmp_path / "m"), "--base", "openai:m@http://127.0.0.1:1/v1"],
         "only local weights"),
        (["--data", str(data), "--out", str(tmp_path / "m"), "--base", str(tmp_path)], "neither a .gguf"),
        (["--data", str(data), "--out", str(tmp_path / "m"), "--method", "qlora"], "qlora"),
        (["--data", str(data), "--out", str(tmp_path / "m"), "--lr", "0"], "--lr"),
        (["--data", str(data), "--out", str(data)], "is a file; name the model directory"),
        (["--data", str(data), "--out", str(tmp_path / "stale")], "checkpoints of an unfinished run; pass --resume"),
    ]
    (tmp_path / "stale" / "checkpoints" / "checkpoint-40").mkdir(parents=True)
    if not torch.cuda.is_available():  # a GPU machine would train here instead
        cases.append((["--data", str(data), "--out", str(tmp_path / "m"), "--device", "cuda"],
                      "CUDA is not available"))
    for args, needle in cases:
        assert main(["train", *args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    data.write_text("not json\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    assert "d.jsonl:1" in capsys.readouterr().err


def test_export_gguf_refuses_what_is_not_a_model_directory(tmp_path: Path, capsys) -> None:
    assert main(["export", "gguf", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["export", "gguf", str(tmp_path), "--format", "q4_k"]) == 2
    assert "q4_k" in capsys.readouterr().err
