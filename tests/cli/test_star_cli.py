"""``ponder star`` at the CLI: bad arguments and refused runs are one line and exit 2, before any model loads.
(The loop itself: tests/training/test_star.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from ponder.cli import main


def test_star_errors_are_one_line_exit_2(tmp_path: Path, data_dir: Path, capsys) -> None:
    out = str(tmp_path / "star")
    svamp = str(data_dir / "svamp" / "svamp.jsonl")
    cases = [
        (["nosuch", "--out", out], "unknown suite"),
        (["hotpotqa", "--out", out], "no numeric answers"),
        (["svamp", "--out", out], "--train-data"),
        (["svamp", "--out", out, "--train-data", svamp, "--train-limit", "20", "--eval-limit", "10"],
         "10 training question(s) are in the held-out svamp questions"),
        (["gsm8k", "--out", out, "--train-limit", "5", "--eval-extra", "gsm8k"], "evaluated already"),
        (["gsm8k", "--out", out, "--base", "openai:m@http://127.0.0.1:1/v1"], "--base"),
        (["gsm8k", "--out", out, "--temperature", "0"], "--temperature"),
        (["gsm8k", "--out", out, "--method", "qlora"], "qlora"),
        (["gsm8k", "--out", out, "--lr", "-1"], "--lr"),
        (["gsm8k", "--out", out, "--train-data", str(tmp_path / "none.jsonl")], "none.jsonl"),
        (["gsm8k", "--out", out, "--train-skip", "99999"], "no training questions left"),
        (["gsm8k", "--samples", "0", "--out", out], "--samples"),
        (["gsm8k"], "--out"),
        (["gsm8k", "--out", svamp, "--train-limit", "2", "--eval-limit", "2"], "is a file; name the folder"),
    ]
    for args, needle in cases:
        assert main(["star", *args]) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "star").exists()  # nothing was started


def test_star_refuses_an_existing_run_without_resume(tmp_path: Path, capsys) -> None:
    out = tmp_path / "star"
    out.mkdir()
    (out / "star.json").write_text(json.dumps({"config": {}, "rounds": {}}))
    assert main(["star", "gsm8k", "--out", str(out), "--train-limit", "2", "--eval-limit", "2"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["star", "gsm8k", "--out", str(out), "--train-limit", "2", "--eval-limit", "2", "--resume"]) == 2
    assert "other options" in capsys.readouterr().err
