"""The strategy options of ``ponder run`` and ``ponder eval`` are generated from ``RunSpec``: same flags, help,
defaults, choices and bounds; a bad value is one line and exit code 2."""

from __future__ import annotations

import pytest
import typer

from ponder.cli import main
from ponder.cli.entry import app
from ponder.cli.eval import EVAL_SPEC_FIELDS
from ponder.graphs.strategies.spec import SpecField, spec_fields

CLI_FIELDS = [f for f in spec_fields() if f.cli]


def options_of(command: str) -> dict[str, typer.core.TyperOption]:
    click_command = typer.main.get_command(app).commands[command]
    return {p.name: p for p in click_command.params if isinstance(p, typer.core.TyperOption)}


def help_record(command: str, name: str) -> tuple[str, str]:
    click_command = typer.main.get_command(app).commands[command]
    ctx = click_command.make_context(command, [], resilient_parsing=True)
    return options_of(command)[name].get_help_record(ctx)


def test_the_spec_has_command_line_fields() -> None:
    names = {f.name for f in CLI_FIELDS}
    assert {"agent", "samples", "vote", "early_stop", "stop_rule", "budget", "wave", "trials", "memory"} <= names
    assert not {f.name for f in spec_fields() if not f.cli} & set(options_of("run"))  # Python-API-only fields


@pytest.mark.parametrize("field", CLI_FIELDS, ids=lambda f: f.name)
def test_run_option_is_the_spec_field(field: SpecField) -> None:
    option = options_of("run")[field.name]
    assert field.flag in option.opts and option.help == field.help
    assert option.default is None  # "not given": parse_spec applies the spec's default, and knows what was given
    name = field.flag[2:]
    default = (name if field.default else f"no-{name}") if isinstance(field.default, bool) else field.default
    shown = "" if field.default is None else f"[default: ({default})"
    if field.annotation is bool:
        assert option.secondary_opts == [f"--no-{field.flag[2:]}"]
    if field.minimum is not None:
        assert option.min == field.minimum
    flags, text = help_record("run", field.name)
    if field.choices:
        assert f"<{'|'.join(field.choices)}>" in flags
    assert text.startswith(field.help) and shown in text


@pytest.mark.parametrize("name", EVAL_SPEC_FIELDS)
def test_eval_option_is_the_spec_field(name: str) -> None:
    field = next(f for f in CLI_FIELDS if f.name == name)
    option = options_of("eval")[name]
    assert field.flag in option.opts and option.help == field.help and option.default is None
    assert set(options_of("eval")) & {f.name for f in CLI_FIELDS} == set(EVAL_SPEC_FIELDS)


CHOICES = [(c, f) for c in ("run", "eval") for f in CLI_FIELDS
           if f.choices and (c == "run" or f.name in EVAL_SPEC_FIELDS)]


@pytest.mark.parametrize(("command", "field"), CHOICES, ids=[f"{c}-{f.name}" for c, f in CHOICES])
def test_a_bad_choice_is_one_line_and_exit_2(command: str, field: SpecField, tmp_path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = ["q"] if command == "run" else ["gsm8k", "--out", str(tmp_path / "o")]
    assert main([command, *target, field.flag, "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ponder: error: Invalid value for")
    assert f"'bogus' is not one of {', '.join(map(repr, field.choices))}" in err and field.flag in err
    assert "Value error" not in err  # pydantic's prefix (Typer checks choices with it) is dropped


@pytest.mark.parametrize(("argv", "message"), [
    (["--samples", "0"], "Invalid value for '--samples'"),
    (["--threshold", "1.5", "--samples", "2"], "--threshold must be below 1"),
    (["--wave", "2"], "--wave applies to self-consistency: add --samples N"),
    (["--early-stop", "--budget", "6s"], "--early-stop and --budget apply to self-consistency"),
    (["--samples", "3", "--budget", "lots"], "invalid budget 'lots'"),
    (["--samples", "3", "--answer-kind", "colour"], "--answer-kind must be one of"),
])
def test_cross_field_checks_are_the_specs(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "q", "--model", "scripted:/no/such.jsonl", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
