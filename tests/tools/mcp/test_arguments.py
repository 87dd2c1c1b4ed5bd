"""MCP tools' argument models, names and observations (no server process)."""

from __future__ import annotations

import pytest
from mcp_types import CallToolResult, EmbeddedResource, ImageContent, TextContent, TextResourceContents

from ponder.core.errors import ConfigError
from ponder.tools.base import ToolInputError, parse_tool_input
from ponder.tools.mcp.arguments import args_model
from ponder.tools.mcp.content import MAX_OBSERVATION_CHARS, observation
from ponder.tools.mcp.naming import agent_tool_name, check_unique

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
    "properties": {"a": {"type": "number", "description": "First"}, "count": {"type": "integer", "default": 3},
                   "model_kind": {"type": "string", "enum": ["x", "y"]}, "tags": {"type": "array"}},
    "required": ["a"],
}


class Fake:
    def __init__(self, name, schema):
        self.name, self.args_schema = name, args_model(name, schema)


def test_the_schema_is_the_servers_unchanged_and_fields_follow_its_properties():
    model = args_model("t", SCHEMA)
    assert model.model_json_schema() == SCHEMA
    assert model.model_json_schema() is not SCHEMA["properties"]  # a copy: callers may change it
    assert len(model.model_fields) == 4


def test_only_given_arguments_are_sent_under_the_servers_names():
    t = Fake("t", SCHEMA)
    args = parse_tool_input(t, '{"a": 2, "model_kind": "x"}')
    assert args.arguments() == {"a": 2, "model_kind": "x"}  # count left out (the server's default applies)
    with pytest.raises(ToolInputError, match="a: Field required"):
        parse_tool_input(t, '{"count": 1}')
    with pytest.raises(ToolInputError, match="typo: Extra inputs are not permitted"):
        parse_tool_input(t, '{"a": 1, "typo": 1}')
    with pytest.raises(ToolInputError, match="a: Value error, Input should be a number"):
        parse_tool_input(t, '{"a": "two"}')


def test_a_one_input_tool_takes_plain_text_and_a_schema_without_properties_takes_any_object():
    one = Fake("one", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    assert parse_tool_input(one, "7").arguments() == {"n": 7}
    free = Fake("free", {"type": "object"})
    assert parse_tool_input(free, '{"anything": [1]}').arguments() == {"anything": [1]}
    closed = Fake("closed", {"type": "object", "additionalProperties": False})
    with pytest.raises(ToolInputError):
        parse_tool_input(closed, '{"x": 1}')


@pytest.mark.parametrize(("prefix", "tool", "name"), [("", "get-sum", "get-sum"), ("fs_", "read.file", "fs_read_file"),
                                                     ("", "a/b c", "a_b_c")])
def test_names_are_made_fit(prefix, tool, name):
    assert agent_tool_name("s", prefix, tool) == name


def test_a_name_too_long_is_a_config_error():
    with pytest.raises(ConfigError, match=r"tool 'x+' cannot be named .* 1-64 characters"):
        agent_tool_name("s", "", "x" * 65)


def test_names_differing_in_case_clash():
    check_unique({"a": ["echo"], "b": ["b_echo"]})
    with pytest.raises(ConfigError, match=r"two tools are named 'ECHO': a \('echo'\) and b; set a prefix"):
        check_unique({"a": ["echo"], "b": ["ECHO"]})


def test_observations_show_text_and_note_other_content():
    result = CallToolResult(content=[
        TextContent(text="first"), ImageContent(data="aGVsbG8=", mime_type="image/png"),
        EmbeddedResource(type="resource", resource=TextResourceContents(uri="file:///x", text="inside")),
    ])
    assert observation(result) == "first\n[image: image/png, 5 bytes]\ninside"
    assert observation(CallToolResult(content=[], structured_content={"k": 1})) == '{"k": 1}'
    assert observation(CallToolResult(content=[])) == "(the tool returned no content)"
    long = observation(CallToolResult(content=[TextContent(text="x" * (MAX_OBSERVATION_CHARS + 10))]))
    assert long.endswith("[... 10 more characters cut]")
