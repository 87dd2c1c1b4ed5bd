"""An MCP server's tool as a ponder :class:`~ponder.tools.base.Tool`."""

from __future__ import annotations

import mcp_types
from pydantic import BaseModel

from ponder.tools.base import ToolInputError
from ponder.tools.mcp.arguments import MCPArguments, args_model
from ponder.tools.mcp.connection import MCPCallError, ServerConnection
from ponder.tools.mcp.content import observation


class MCPTool:
    """One tool of one MCP server.

    Args:
        name: The name the agent uses (the configured prefix plus the server's name, made fit).
        spec: The tool as the server lists it (its name, description and ``inputSchema``).
        connection: The open connection to its server.

    Attributes:
        server_tool: The tool's name on the server.
        server: The server's name in ``[mcp.servers]``.
    """

    def __init__(self, name: str, spec: mcp_types.Tool, connection: ServerConnection) -> None:
        self.name = name
        self.server_tool = spec.name
        self.server = connection.name
        self.description = (spec.description or spec.title or spec.name).strip()
        self.args_schema: type[BaseModel] = args_model(name, spec.input_schema)
        self._connection = connection

    def run(self, args: BaseModel) -> str:
        """Call the tool on its server and return the text of its result.

        Raises:
            ToolInputError: the tool reported an error (``isError``), timed out, or its server is gone or failed;
                the message becomes the model's ``Error: ...`` observation.
        """
        arguments = args.arguments() if isinstance(args, MCPArguments) else args.model_dump(exclude_unset=True)
        try:
            result = self._connection.call(self.server_tool, arguments)
        except MCPCallError as exc:
            raise ToolInputError(str(exc)) from None
        if result.is_error:
            raise ToolInputError(observation(result))
        return observation(result)

    def __repr__(self) -> str:
        return f"MCPTool({self.name!r}, server={self.server!r})"
