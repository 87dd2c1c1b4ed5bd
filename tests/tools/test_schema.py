"""Tool definitions for native function calling (tools/schema.py)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from ponder.core.settings import Settings
from ponder.tools.base import FunctionTool, ToolBox
from ponder.tools.calculator import calculator_tool
from ponder.tools.python_tool import PythonTool
from ponder.tools.schema import tool_definition, tool_parameters


def convert(amount: float, unit: Literal["km", "mi"] = "km", title: str = "") -> str:
    """Convert a distance.

    Longer text that is not the description.

    Args:
        amount: How far, as a number.
        unit: The unit to convert
            from.
        title: A label for the result.
    """
    return f"{amount} {unit} {title}"


def test_a_function_tool_has_types_descriptions_enums_and_required_without_titles():
    params = tool_parameters(FunctionTool(convert))
    assert params == {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "description": "How far, as a number."},
            "unit": {"type": "string", "enum": ["km", "mi"], "default": "km",
                     "description": "The unit to convert from."},
            "title": {"type": "string", "default": "", "description": "A label for the result."},
        },
        "required": ["amount"],
    }
    definition = tool_definition(FunctionTool(convert))
    assert definition["type"] == "function"
    assert definition["function"]["name"] == "convert"
    assert definition["function"]["description"] == "Convert a distance."


def test_ponders_own_tools_describe_their_arguments():
    calc = tool_parameters(calculator_tool())
    assert calc["required"] == ["expression"] and calc["properties"]["expression"]["type"] == "string"
    assert "arithmetic" in calc["properties"]["expression"]["description"]
    code = tool_parameters(PythonTool(lambda: None))  # type: ignore[arg-type,return-value]
    assert code["properties"]["code"]["description"] and "title" not in code
    from ponder.tools.search.tools import search_tools

    for t in search_tools(Settings()):
        (field,) = tool_parameters(t)["properties"].values()
        assert field["type"] == "string" and field["description"], t.name


def test_a_server_schema_passes_through_without_titles():
    """An MCP tool's args_schema returns the server's inputSchema as it is: only titles go."""
    server_schema = {"type": "object", "title": "add_args", "properties": {
        "a": {"type": "integer", "title": "A", "description": "first"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["a"], "$defs": {"Item": {"type": "object", "title": "Item",
                                              "properties": {"title": {"type": "string", "default": {"title": 1}}}}}}

    class ServerArgs(BaseModel):
        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return server_schema

    class McpLike:
        name, description = "add", "Add two numbers (from the server)."
        args_schema: ClassVar[type[BaseModel]] = ServerArgs

        def run(self, args: BaseModel) -> str:
            return ""

    params = tool_parameters(McpLike())
    assert params == {"type": "object", "properties": {
        "a": {"type": "integer", "description": "first"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["a"], "$defs": {"Item": {"type": "object",
                                              "properties": {"title": {"type": "string", "default": {"title": 1}}}}}}
    assert server_schema["title"] == "add_args"  # the tool's own schema is not changed


def test_a_tool_without_arguments_is_an_empty_object():
    def now() -> str:
        """The time."""
        return "noon"

    assert tool_parameters(FunctionTool(now)) == {"type": "object", "properties": {}}


def test_an_mcp_tools_argument_model_gives_the_servers_schema():
    from ponder.tools.mcp.arguments import args_model

    input_schema = {"type": "object", "properties": {
        "a": {"type": "number", "description": "First number"}, "mode": {"type": "string", "enum": ["x", "y"]}},
        "required": ["a"]}

    class Tool:
        name, description = "add", "Add."
        args_schema = args_model("add", input_schema)

        def run(self, args: BaseModel) -> str:
            return ""

    assert tool_parameters(Tool()) == input_schema


def test_the_text_prompt_gives_a_several_argument_tool_its_keys_types_and_descriptions():
    def convert(amount: float, unit: Literal["m", "km"], tags: list[str] | None = None) -> str:
        """Converts a distance.

        Args:
            amount: How far,
                in metres.
            unit: The unit of the result.
        """
        return ""

    described = ToolBox([FunctionTool(convert), calculator_tool()]).describe().splitlines()
    assert described[0] == ('convert: Converts a distance. (input: a JSON object {"amount": number, "unit": "m" | '
                            '"km", "tags"?: array of string | null}; amount: How far, in metres.; unit: The unit of '
                            'the result.)')
    assert described[1].endswith("(input: expression)")  # one-argument tools keep their plain-text input
