import pytest

from ponder.agents.runner import run_agent
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel


def program(body: str) -> str:
    lines = "\n".join("    " + ln for ln in body.splitlines())
    return f"```python\ndef solution():\n{lines}\n```"


def run(script, tmp_path, **overrides):
    model = ScriptedModel(script) if not isinstance(script, ScriptedModel) else script
    settings = load_settings(out_dir=tmp_path, exec_timeout=overrides.pop("exec_timeout", 2.0), **overrides)
    return run_agent("How many?", agent="pal", model=model, settings=settings), model


def test_success(tmp_path):
    traj, model = run([program("eggs = 16 - 3 - 4\nreturn eggs * 2")], tmp_path)
    assert traj.status == "solved" and traj.final_answer == "18"
    (step,) = traj.steps
    assert step.kind == "program" and "eggs * 2" in step.action_input and step.observation == "18"
    assert traj.usage.tool_calls == 1 and len(model.calls) == 1


def test_float_and_printed_answers(tmp_path):
    traj, _ = run([program("return 36 / 2")], tmp_path)
    assert traj.final_answer == "18"
    traj, _ = run([program("print('ignored')\nprint(7)")], tmp_path)
    assert traj.final_answer == "7"


def test_exception_becomes_observation_then_retry(tmp_path):
    traj, model = run([program("return 1 / 0"), program("return 5")], tmp_path)
    assert traj.status == "solved" and traj.final_answer == "5"
    assert [s.kind for s in traj.steps] == ["program", "program"]
    feedback = model.calls[1][-1]["content"]
    assert "ZeroDivisionError" in feedback and "Fix it" in feedback


def test_missing_code_is_parse_error_then_retry(tmp_path):
    traj, model = run(["The answer is 5.", program("return 5")], tmp_path)
    assert traj.status == "solved"
    assert traj.steps[0].kind == "parse_error"
    assert "no Python code block" in model.calls[1][-1]["content"]


def test_only_prose_ends_with_parse_error(tmp_path):
    traj, model = run(ScriptedModel(["I don't know."], repeat_last=True), tmp_path, pal_retries=2)
    assert traj.status == "parse_error" and len(model.calls) == 3


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("while True:\n    pass", "timeout", marks=pytest.mark.slow),  # waits out the 1 s timeout
        pytest.param("import time\ntime.sleep(60)", "timeout", marks=pytest.mark.slow),
        ("while True:\n    print('x' * 1000)", "Execution stopped"),
        ("return None", "returned None"),
        ("raise ValueError('bad')", "ValueError: bad"),
    ],
)
def test_failing_programs_exhaust_retries_cleanly(body, expected, tmp_path):
    traj, model = run(ScriptedModel([program(body)], repeat_last=True), tmp_path, pal_retries=1, exec_timeout=1.0)
    assert traj.status == "max_steps" and traj.final_answer is None
    assert len(traj.steps) == 2 == len(model.calls)
    assert expected in traj.steps[0].observation
    assert len(traj.steps[0].observation) < 3000  # an output flood is cut
    assert traj.usage.wall_seconds < 30


def test_syntax_error_is_reported(tmp_path):
    traj, _ = run(["```python\ndef solution(:\n    return 1\n```", program("return 2")], tmp_path)
    assert "SyntaxError" in traj.steps[0].observation and traj.final_answer == "2"
