"""Tools an agent can call: plain functions or :class:`~ponder.tools.base.Tool` objects."""

from ponder.tools.base import FunctionTool, Tool, ToolBox, ToolInputError, tool

__all__ = ["FunctionTool", "Tool", "ToolBox", "ToolInputError", "tool", "default_tools"]


def default_tools() -> list[Tool]:
    """The calculator alone: what the graph diagrams and simple examples use."""
    from ponder.tools.calculator import calculator_tool

    return [calculator_tool()]
