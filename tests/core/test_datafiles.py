"""The strict reader of user-supplied JSONL / JSON files: every bad line is reported, nothing is skipped silently."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.datafiles import read_json_file, read_jsonl_file
from ponder.core.errors import BadLinesError, ConfigError, DataError


def number(obj: object) -> int:
    """A row that must be a JSON object holding an integer ``n``."""
    if not isinstance(obj, dict) or not isinstance(obj.get("n"), int):
        raise ValueError("expected an object with an integer 'n'")
    return obj["n"]


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_good_file_keeps_line_numbers_and_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.jsonl", '{"n": 1}', "", "   ", '{"n": 2}')
    read = read_jsonl_file(path, number)
    assert read.rows == [(1, 1), (4, 2)] and read.values() == [1, 2] and read.skipped == []
    assert read.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_byte_order_mark_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "win.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"n": 1}\r\n{"n": 2}\r\n')
    assert read_jsonl_file(path, number).values() == [1, 2]


@pytest.mark.parametrize("content", ["", "\n\n", "  \n\t\n"])
def test_empty_or_blank_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=r"data file .*empty.jsonl is empty") as info:
        read_jsonl_file(path, number, skip_bad_lines=True)
    assert not isinstance(info.value, BadLinesError)


def test_missing_file_raises_the_callers_error_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="memory file not found: .*nope.jsonl"):
        read_jsonl_file(tmp_path / "nope.jsonl", number, what="memory")
    with pytest.raises(ConfigError, match="script file not found"):
        read_jsonl_file(tmp_path / "nope.jsonl", number, what="script", missing=ConfigError)
    with pytest.raises(DataError, match="is not a regular file"):
        read_jsonl_file(tmp_path, number)


def test_a_file_with_only_a_bad_line_fails_even_when_skipping(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", "{ not json")
    for skip in (False, True):
        with pytest.raises(BadLinesError) as info:
            read_jsonl_file(path, number, what="memory", skip_bad_lines=skip)
        assert info.value.summary == f"{path}: no valid memory line (1 bad line)"
        assert info.value.problems == [f"{path}:1: not valid JSON (Expecting property name enclosed in double "
                                       "quotes: column 3)"]


def test_every_bad_line_is_reported_and_the_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"n": 1}\n[1]\n{"n": 2}\n{"n": "x"\n\xff{"n": 3}\n{"n": 4}\n{"n": 5')  # torn last line
    with pytest.raises(BadLinesError) as info:
        read_jsonl_file(path, number, hint="pass --skip-bad-lines to use the good ones")
    err = info.value
    assert [lineno for lineno, _ in err.bad] == [2, 4, 5, 7]
    assert err.problems[0] == f"{path}:2: expected an object with an integer 'n'"
    assert err.problems[1].startswith(f"{path}:4: not valid JSON (Expecting ',' delimiter")
    assert err.problems[2] == f"{path}:5: not valid UTF-8 (byte 0xff at column 1)"
    assert err.problems[3].startswith(f"{path}:7: not valid JSON")
    assert err.summary == f"{path}: 4 bad lines and 3 good: pass --skip-bad-lines to use the good ones"
    assert str(err).splitlines() == [err.summary, *err.problems]


def test_skip_bad_lines_returns_the_good_rows_and_every_skipped_line(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.jsonl", '{"n": 1}', "nope", '{"n": 2}', "{}")
    read = read_jsonl_file(path, number, skip_bad_lines=True)
    assert read.rows == [(1, 1), (3, 2)]
    assert read.skipped == [f"{path}:2: not valid JSON (Expecting value: column 1)",
                            f"{path}:4: expected an object with an integer 'n'"]


def test_pydantic_errors_name_the_fields_and_duplicates_name_the_first_line(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Row(BaseModel):
        id: str
        size: int

    path = write(tmp_path / "rows.jsonl", '{"id": "a", "size": 1}', '{"size": "big"}', '{"id": "a", "size": 2}')
    with pytest.raises(BadLinesError) as info:
        read_jsonl_file(path, Row.model_validate, key=lambda row: row.id)
    assert info.value.problems == [
        f"{path}:2: bad row: id: Field required; size: Input should be a valid integer, unable to parse string "
        "as an integer",
        f"{path}:3: duplicate id 'a' (first on line 1)"]


def test_limit_stops_reading_after_enough_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.jsonl", '{"n": 1}', "bad", '{"n": 2}', "bad after the limit")
    with pytest.raises(BadLinesError, match=":2: not valid JSON"):
        read_jsonl_file(path, number, limit=2)
    assert read_jsonl_file(path, number, limit=1).values() == [1]


def test_many_bad_lines_show_twenty_reasons_then_every_other_line_number(tmp_path: Path) -> None:
    path = write(tmp_path / "many.jsonl", '{"n": 0}', *["x"] * 30, '{"n": 1}', "x", "x")
    with pytest.raises(BadLinesError) as info:
        read_jsonl_file(path, number)
    err = info.value
    assert len(err.problems) == 32 and len(err.details()) == BadLinesError.SHOWN + 1
    assert err.details()[-1] == f"{path}: 12 more bad lines: 22-31, 33-34"
    again = pickle.loads(pickle.dumps(err))  # crosses process boundaries intact
    assert isinstance(again, BadLinesError) and again.problems == err.problems and str(again) == str(err)


def test_cli_prints_every_bad_line_then_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    import ponder.cli.entry as cli

    path = write(tmp_path / "bad.jsonl", '{"n": 1}', "oops", "[]")

    def boom() -> None:
        read_jsonl_file(path, number)

    sub = typer.Typer()
    sub.command("boom")(boom)
    sub.command("noop")(lambda: None)
    monkeypatch.setattr(cli, "app", sub)
    assert main(["boom"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{path}:2: not valid JSON (Expecting value: column 1)",
                   f"{path}:3: expected an object with an integer 'n'",
                   f"ponder: error: {path}: 2 bad lines and 1 good: the file was refused; fix the lines listed"]


def test_read_json_file_names_the_line_of_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text('{\n  "a": 1,\n  "b": [1, 2\n}\n')
    with pytest.raises(DataError, match=rf"^{path}:4: not valid JSON \(Expecting ',' delimiter: column 1\)$"):
        read_json_file(path)
    path.write_text(json.dumps({"a": [1]}, indent=2))
    assert read_json_file(path) == {"a": [1]}
    path.write_text(" \n")
    with pytest.raises(DataError, match="suite file .* is empty"):
        read_json_file(path, what="suite")
    path.write_bytes(b'{\n"a": "\xe9"}')
    with pytest.raises(DataError, match=r"suite.json:2: not valid UTF-8 \(byte 0xe9\)"):
        read_json_file(path)
