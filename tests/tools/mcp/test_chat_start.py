"""``ponder chat --mcp`` with a server that cannot start fails at once (one line, exit 2), before any turn."""

from __future__ import annotations

import io
import json
import sys

from ponder.cli.entry import main


def test_chat_with_a_server_that_fails_to_start_stops_before_the_first_turn(script_server, tmp_path, monkeypatch,
                                                                             capsys):
    config = tmp_path / "ponder.toml"
    table = script_server("exit")
    config.write_text("[mcp.servers.bad]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    monkeypatch.setenv("PONDER_CONFIG", str(config))
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps("Final Answer: x") + "\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("first question\nsecond question\n"))
    code = main(["chat", "--mcp", "bad", "-m", f"scripted:{script}", "--db", str(tmp_path / "threads.sqlite")])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("ponder: error: MCP server 'bad'"), captured.err
    assert "you>" not in captured.out  # no turn was taken
