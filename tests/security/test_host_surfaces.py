"""Attacks on the host around the sandbox: what its output does to the parser, the terminal and the disk.

One case per attack; each checks that the attack failed and that the host is unharmed: no traceback, a
terminal stream free of ESC/BEL/CSI, a victim file left byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from ponder.cli import main
from ponder.core.records import Step

pytestmark = pytest.mark.security

#: Real escape sequences: OSC 52 clipboard write (BEL- and ST-terminated), cursor up + erase line (to overwrite
#: the "isolation bwrap" line), absolute cursor position, window title, 8-bit CSI, bell, lone carriage return.
ESCAPES = ("\x1b]52;c;cm0gLXJmIH4K\x07" "\x1b]52;p;cm0gLXJmIH4K\x1b\\" "\x1b[1A\x1b[2K" "\x1b[31337;1H"
           "\x1b]0;pwned\x07" "\x9b2J" "\x07" "fake\rreal")
#: Bytes that must never reach the terminal from hostile text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def bwrap_or_skip() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: the sandbox cannot run here (`make test` installs it)")


def assert_terminal_clean(text: str) -> None:
    found = sorted({hex(ord(c)) for c in _CONTROL.findall(text)})
    assert not found, f"control characters reached the terminal: {found}\n{text!r}"


def script(tmp_path: Path, *replies: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in replies))
    return f"scripted:{path}"


def pal_program(body: str) -> str:
    lines = "\n".join("    " + ln for ln in body.splitlines())
    return f"```python\ndef solution():\n{lines}\n```"


# --------------------------------------------------------------- 1. a crafted __repr__ against literal_eval

#: ``__repr__`` results that make ``ast.literal_eval`` (or ``str`` of its result) raise. The sandbox cuts a value
#: at 4000 characters, so these stay under it; longer ones (MemoryError) are in tests/agents/test_parsing.py.
HOSTILE_REPRS = {
    "RecursionError": "'-' * 3990 + '1'",
    "RecursionError_invert": "'~' * 3990 + '1'",
    "TypeError": "'{[]: 1}'",
    "ValueError_str": "'0x' + 'f' * 3990",
    "truncated": "'[' * 9000",
}


@pytest.mark.parametrize("expr", HOSTILE_REPRS.values(), ids=HOSTILE_REPRS.keys())
def test_crafted_repr_does_not_crash_the_pal_agent(expr: str, tmp_path: Path, capsys) -> None:
    bwrap_or_skip()
    body = f"class Evil:\n    def __repr__(self):\n        return {expr}\nreturn Evil()"
    spec = script(tmp_path, pal_program(body))
    code = main(["run", "q", "--agent", "pal", "--model", spec, "--out", str(tmp_path / "out"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in out + err, err
    result = json.loads(out)
    assert result["status"] == "solved" and result["error"] is None
    assert result["answer"].startswith(eval(expr)[:3000])  # noqa: S307 - our own constant; plain text


def test_crafted_repr_through_the_console_script(tmp_path: Path) -> None:
    bwrap_or_skip()
    body = f"class Evil:\n    def __repr__(self):\n        return {HOSTILE_REPRS['RecursionError']}\nreturn Evil()"
    spec = script(tmp_path, pal_program(body))
    proc = subprocess.run([sys.executable, "-m", "ponder.cli", "run", "q", "--agent", "pal", "--model", spec,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "status solved" in proc.stdout


# --------------------------------------------------------------- 2. terminal escapes in what is printed

EVIL_CODE = f"""
import sys
E = {ESCAPES!r}
print("out" + E)
print("err" + E, file=sys.stderr)
class V:
    def __repr__(self):
        return "value" + E
V()
"""


def test_escapes_from_sandbox_exec_never_reach_the_terminal(capsys) -> None:
    bwrap_or_skip()
    assert main(["sandbox", "exec", EVIL_CODE]) == 0
    out, err = capsys.readouterr()
    assert_terminal_clean(out + err)
    lines = out.splitlines()
    assert lines[0].startswith("out]52;c;") and "fakereal" in lines[0]  # shown, inert
    assert re.fullmatch(r"\d+ ms · isolation bwrap", lines[-1]), lines[-1]  # the last line is ours, intact


def test_escapes_in_an_error_and_in_json_never_reach_the_terminal(capsys) -> None:
    bwrap_or_skip()
    assert main(["sandbox", "exec", f"raise ValueError({ESCAPES!r})"]) == 1
    out, err = capsys.readouterr()
    assert_terminal_clean(out + err)
    assert "]52;c;cm0gLXJmIH4K" in out and re.fullmatch(r"\d+ ms · isolation bwrap", out.splitlines()[-1])
    assert main(["sandbox", "exec", "--json", EVIL_CODE]) == 0
    out = capsys.readouterr().out
    assert_terminal_clean(out) and out.isascii()
    assert json.loads(out)["value"] == "value" + ESCAPES  # the data is intact; only its display is escaped


def test_escapes_in_a_pal_run_trace_never_reach_the_terminal(tmp_path: Path, capsys) -> None:
    bwrap_or_skip()
    spec = script(tmp_path, f"Thought: {ESCAPES}\n" + pal_program(f"print('x')\nreturn {ESCAPES!r}"))
    assert main(["run", "q", "--agent", "pal", "--model", spec, "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert_terminal_clean(out + err)
    assert "Final Answer" in out and "]52;c;" in out


def _evil_turn(renderer) -> None:
    for piece in ("Thought: ", "\x1b]52;c;cm0=", "\x07", ESCAPES[:9], ESCAPES[9:]):  # split mid-sequence
        renderer.token(piece)
    renderer.step(Step(index=0, kind="action", raw=ESCAPES, thought=ESCAPES, action="python",
                       action_input=ESCAPES, observation=ESCAPES))
    renderer.answer({"answer": ESCAPES, "status": "solved", "steps": [1], "agent": "react"})
    renderer.info(f"lesson: {ESCAPES}")
    renderer.error(f"error: {ESCAPES}")


def test_escapes_through_the_chat_renderer_plain_stream() -> None:
    from ponder.chat.render import ChatRenderer

    buf = io.StringIO()
    _evil_turn(ChatRenderer(Console(file=buf, width=200, highlight=False)))
    assert_terminal_clean(buf.getvalue())
    assert "Answer" in buf.getvalue() and "]52;c;" in buf.getvalue()


def test_escapes_through_the_chat_renderer_on_a_terminal() -> None:
    """On a terminal Rich writes its own SGR and cursor codes (and streams tokens live); none of ours get through."""
    from ponder.chat.render import ChatRenderer

    buf = io.StringIO()
    renderer = ChatRenderer(Console(file=buf, force_terminal=True, width=200, highlight=False))
    assert renderer.streams
    _evil_turn(renderer)
    shown = buf.getvalue()
    for payload in ("\x1b]", "\x07", "\x9b", "\x1b[31337", "\x1b[1A\x1b[2Kfake", "fake\r"):
        assert payload not in shown, (payload, shown)
    assert "fakereal" in shown and "]52;c;" in shown  # the text is shown, inert
    rich_own = re.sub(r"\x1b\[[0-9;]*[mAKG?]|\x1b\[\?25[lh]", "", shown)  # SGR, cursor up, erase line, cursor
    assert "\x1b" not in rich_own, rich_own


# --------------------------------------------------------------- 3. predictable temporary names on the host

def _store(tmp_path: Path):
    from ponder.core.settings import load_settings
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.schema import Insight
    from ponder.memory.store import open_store

    store = open_store(load_settings(memory_path=tmp_path / "memory"), embedding_function=HashingEmbeddingFunction())
    store.add_many([Insight(text=f"insight number {n}") for n in range(3)])
    return store


def test_memory_export_does_not_write_through_a_planted_symlink(tmp_path: Path, monkeypatch, capsys) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    export = tmp_path / "out" / "mem.jsonl"
    export.parent.mkdir()
    planted = export.parent / f".{export.name}.{os.getpid()}.tmp"  # the name the old code wrote through
    planted.symlink_to(victim)
    with _store(tmp_path) as store:
        monkeypatch.setenv("PONDER_MEMORY_PATH", str(store.settings.memory_path))
        assert main(["memory", "export", str(export)]) == 0
    assert "exported 3 memories" in capsys.readouterr().out
    assert victim.read_text() == "precious\n"  # the host's file is unharmed
    assert not export.is_symlink() and len(export.read_text().splitlines()) == 3
    assert planted.is_symlink() and sorted(p.name for p in export.parent.iterdir()) == [planted.name, export.name]


def test_concurrent_memory_exports_do_not_collide(tmp_path: Path) -> None:
    target = tmp_path / "mem.jsonl"
    errors: list[BaseException] = []
    with _store(tmp_path) as store:
        expected = None

        def export() -> None:
            try:
                for _ in range(3):
                    store.export(target)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=export) for _ in range(4)]  # one pid: the old tmp name was shared
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store.export(tmp_path / "alone.jsonl")
        expected = (tmp_path / "alone.jsonl").read_bytes()
    assert errors == []
    assert target.read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone.jsonl", "mem.jsonl", "memory"]


def test_eval_manifest_does_not_write_through_a_planted_symlink(tmp_path: Path) -> None:
    from ponder.core.settings import load_settings
    from ponder.envs.context import EvalOptions
    from ponder.envs.registry import get_suite
    from ponder.envs.runner import write_manifest

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / "run.json.tmp").symlink_to(victim)  # the old fixed name
    write_manifest(out_dir, get_suite("gsm8k"), EvalOptions(suite="gsm8k"), load_settings(), 1, 0)
    assert victim.read_text() == "precious\n"
    assert json.loads((out_dir / "run.json").read_text())["suite"] == "gsm8k"


def test_textworld_suite_manifest_does_not_write_through_a_planted_symlink(tmp_path: Path) -> None:
    from ponder.envs.textworld.cache import write_suite_manifest

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path = tmp_path / "suite.json"
    path.with_suffix(f".tmp{os.getpid()}").symlink_to(victim)  # the old pid-named temporary
    write_suite_manifest(path, "tw", [])
    assert victim.read_text() == "precious\n"
    assert json.loads(path.read_text()) == {"suite": "tw", "games": []}
