"""A stdio server that prints stray lines to stdout: its tools still work and the log gets one line, not a flood."""

from __future__ import annotations

import logging
import sys

from mcp_helpers import TEST_SERVER

from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.mcp import mcp_tools
from ponder.tools.mcp.noise import NON_JSON_FILTER

NOISE_LINES = 200


def test_stray_stdout_lines_are_one_warning_and_the_tools_still_work(marker, caplog):
    noisy = (f"import os, sys\nfor i in range({NOISE_LINES}): print('garbage line', i)\nsys.stdout.flush()\n"
             f"os.execv(sys.executable, [sys.executable, {str(TEST_SERVER)!r}, '--marker', {marker!r}])")
    settings = load_settings(mcp={"servers": {"noisy": {"command": sys.executable, "args": ["-c", noisy],
                                                        "startup_timeout": 15, "call_timeout": 10}}},
                             mcp_servers=["noisy"])
    NON_JSON_FILTER.seen = 0
    with caplog.at_level(logging.WARNING, logger="mcp.client.stdio"):
        box = ToolBox(mcp_tools(settings))
        assert box.call("echo", "still here").observation == "still here"
    records = [r for r in caplog.records if r.name == "mcp.client.stdio"]
    assert len(records) == 1, [r.getMessage()[:80] for r in records[:3]]
    (record,) = records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "'garbage line 0'" in record.getMessage() and "\n" not in record.getMessage()
    assert NON_JSON_FILTER.seen == NOISE_LINES


def test_a_multi_line_command_is_named_on_one_line():
    from ponder.core.settings import MCPServerConfig
    from ponder.tools.mcp.connection import ServerConnection
    from ponder.tools.mcp.loop import LoopThread

    config = MCPServerConfig(command="python3", args=["-c", "import time\ntime.sleep(9)"])
    where = ServerConnection("x", config, LoopThread()).where
    assert "\n" not in where and "import time\\ntime.sleep(9)" in where
