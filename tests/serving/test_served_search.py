"""The ``search`` graph factory (``langgraph.json``: ``search``): LATS or beam search with a verifier, chosen by the
request or the graph's config, built and run in process on a scripted model, as ``langgraph dev`` enters it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.graphs.search.tree import SEARCH_FILE
from ponder.models.scripted import ScriptedModel


def reply(messages, params) -> str:
    """One calculator call, then the answer 5."""
    if "Observation: 5" in messages[-1]["content"]:
        return "Thought: done\nFinal Answer: 5"
    return "Thought: add\nAction: calculator\nAction Input: 2+3"


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    """The factory loads this model and writes under ``tmp_path``."""
    import ponder.models.spec as spec_module

    scripted = ScriptedModel(reply)
    monkeypatch.setattr(spec_module, "load_model", lambda spec, settings=None: scripted)
    monkeypatch.setenv("PONDER_OUT_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PONDER_TOOLS", "[\"calculator\"]")
    return scripted


def serve(config: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Enter the factory's context as the server does (on an event loop) and invoke the graph once."""
    from ponder.serving.graphs import search

    async def call() -> dict[str, Any]:
        async with search(config) as graph:
            return await asyncio.to_thread(graph.invoke, request)

    return asyncio.run(call())


@pytest.mark.parametrize(("config", "request_", "strategy"), [
    ({}, {"task": "What is 2+3?", "verifier": "self,env", "budget": "20000t"}, "lats"),
    ({"configurable": {"strategy": "beam", "beam_width": 2}}, {"task": "What is 2+3?", "verifier": "self"}, "beam"),
    ({"configurable": {"strategy": "beam"}}, {"task": "What is 2+3?", "strategy": "lats", "iterations": 3}, "lats"),
])
def test_the_search_graph_runs_the_chosen_search(model, tmp_path, config, request_, strategy):
    output = serve(config, request_)
    assert (output["strategy"], output["final_answer"], output["status"]) == (strategy, "5", "solved")
    assert 0.0 <= output["score"] <= 1.0 and output["usage"]["model_calls"] >= 3  # agent steps and verifier calls
    tree = output["search_tree"]
    (record,) = (json.loads(line) for line in (tmp_path / "runs" / SEARCH_FILE).read_text().splitlines())
    assert (record["id"], record["strategy"], len(record["nodes"])) == (tree["id"], strategy, tree["nodes"])
    assert tree["chosen"] == record["chosen"] and len(model.calls) >= 2


@pytest.mark.parametrize(("config", "request_", "message"), [
    ({}, {"task": "q", "strategy": "sc"}, "search serves --strategy lats or beam (got 'sc')"),
    ({}, {"task": "q", "verifier": "nope"}, "--verifier: unknown verifier 'nope'"),
    ({}, {"task": "q", "beam_width": 2}, "--beam-width applies to --strategy beam"),
])
def test_bad_requests_fail_with_one_line(model, config, request_, message):
    with pytest.raises(ConfigError) as info:
        serve(config, request_)
    assert message in str(info.value) and model.calls == []


def test_a_bad_config_fails_when_the_graph_is_built(model):
    with pytest.raises(ConfigError, match="got 'single'"):
        serve({"configurable": {"strategy": "single"}}, {"task": "q"})
