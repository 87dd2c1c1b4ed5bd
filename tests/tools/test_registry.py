import pytest

from ponder.agents.runner import run_agent
from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import ToolBox
from ponder.tools.python_tool import PythonTool
from ponder.tools.registry import build_tools, close_tools
from ponder.tools.sandbox.local import LocalSandbox


def test_build_by_name_in_order():
    tools = build_tools(["python", "calculator"], load_settings())
    assert [t.name for t in tools] == ["python", "calculator"]
    close_tools(tools)


def test_unknown_tool_names():
    with pytest.raises(ConfigError, match="unknown tool"):
        build_tools(["teleport"], load_settings())
    with pytest.raises(ConfigError, match="tools.1: unknown value 'teleport'; expected 'calculator', 'python'"):
        load_settings(tools=["calculator", "teleport"])


class CountingSessions:
    def __init__(self):
        self.opened, self.closed = 0, 0

    def open(self):
        self.opened += 1
        counter = self

        class Session(LocalSandbox):
            def close(self):
                counter.closed += 1
                super().close()

        return Session(timeout=5)


def test_python_tool_opens_lazily_and_closes():
    sessions = CountingSessions()
    tool = PythonTool(sessions.open)
    assert sessions.opened == 0
    box = ToolBox([tool])
    result = box.call("python", "print(6 * 7)")
    assert result.ok and result.observation.strip() == "42"
    assert box.call("python", "1/0").observation.endswith("ZeroDivisionError: division by zero")
    assert sessions.opened == 1
    tool.close()
    assert sessions.closed == 1
    tool.close()  # idempotent
    assert sessions.closed == 1


def test_python_tool_in_a_react_run(tmp_path):
    sessions = CountingSessions()
    tool = PythonTool(sessions.open)
    model = ScriptedModel(["Action: python\nAction Input: sum(range(10))", "Final Answer: 45"])
    traj = run_agent("sum 0..9", model=model, tools=[tool], settings=load_settings(out_dir=tmp_path))
    assert traj.steps[0].observation == "45" and traj.status == "solved"
