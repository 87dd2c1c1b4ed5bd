"""Finding the JSON value in a model's reply."""

from __future__ import annotations

import pytest

from ponder.agents.json_extract import extract_json


@pytest.mark.parametrize(("text", "value"), [
    ('{"a": 1}', {"a": 1}),
    ("  [1, 2]\n", [1, 2]),
    ("42", 42),
    ('```json\n{"a": 1}\n```', {"a": 1}),
    ('Here it is:\n```\n{"a": [1, {"b": null}]}\n```\nDone.', {"a": [1, {"b": None}]}),
    ('Sure! The answer is {"a": "x}y"} as asked.', {"a": "x}y"}),
    ('As shown in [1], the object is {"a": 1, "b": [2, 3]}.', {"a": 1, "b": [2, 3]}),
    ('{"a": 1} and then {"much": "longer", "object": true}', {"much": "longer", "object": True}),
])
def test_extracts_json(text: str, value: object) -> None:
    assert extract_json(text) == value


@pytest.mark.parametrize("text", ["", "   ", "no json here", '{"a": 1', "```json\n{oops}\n```"])
def test_no_json_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="no JSON value|empty"):
        extract_json(text)
