"""``ponder view``'s usage errors: one line and exit code 2, nothing served (the pages: tests/viewer/)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ponder.cli.entry import main


def test_a_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ponder: error: no such folder") and "\n" not in err


def test_no_folder_and_no_runs_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["view"]) == 2
    assert "no runs/ folder here" in capsys.readouterr().err


def test_a_taken_port_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["view", str(tmp_path), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--port", "70000"], ["--port", "x"], ["--poll", "0"]])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path), *args]) == 2
    assert capsys.readouterr().err.startswith("ponder: error:")
