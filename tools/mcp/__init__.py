"""Tools from MCP servers (the official ``mcp`` SDK) for ponder's agents.

Stdio or streamable-HTTP servers configured in ``[mcp.servers.NAME]`` and picked with ``--mcp NAME`` join the
agent's tools.

Each server gets one connection per process, opened at first use on a background event loop and reused by
every run; :func:`close_mcp` (also at exit) stops them.
"""

from ponder.tools.mcp.pool import close_mcp, mcp_tools
from ponder.tools.mcp.tool import MCPTool

__all__ = ["MCPTool", "close_mcp", "mcp_tools"]
