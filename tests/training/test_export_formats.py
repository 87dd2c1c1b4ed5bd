"""The export formats: OpenAI's messages-only lines and ATIF v1.4 documents validated against the schema."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from ponder.agents.runner import run_agent
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.training.atif import ATIF_VERSION, AtifTrajectory
from ponder.training.export import export_sft
from ponder.training.export_filters import ExportFilters
from ponder.training.prompt import agent_prefix

REPLIES = ["Thought: add\nAction: calculator\nAction Input: 2+3", "Thought: done\nFinal Answer: 5"]


@pytest.fixture
def run_dir(tmp_path, data_dir):
    settings = load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")
    run_agent("What is 2 + 3?", agent="react", settings=settings, model=ScriptedModel(list(REPLIES)),
              out_dir=tmp_path / "runs")
    return tmp_path / "runs", settings


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_openai_lines_hold_messages_only(tmp_path, run_dir):
    runs, settings = run_dir
    export_sft([runs], tmp_path / "o.jsonl", ExportFilters(), "openai", settings)
    export_sft([runs], tmp_path / "c.jsonl", ExportFilters(), "chat", settings)
    [openai], [chat] = lines(tmp_path / "o.jsonl"), lines(tmp_path / "c.jsonl")
    assert set(openai) == {"messages"} and openai["messages"] == chat["messages"]
    assert all(set(m) == {"role", "content"} for m in openai["messages"])


def test_atif_documents_follow_the_schema(tmp_path, run_dir):
    runs, settings = run_dir
    export_sft([runs], tmp_path / "a.jsonl", ExportFilters(), "atif", settings)
    [doc] = lines(tmp_path / "a.jsonl")
    atif = AtifTrajectory.model_validate(doc)
    prefix = agent_prefix("react", ("calculator", "python"), settings)
    assert doc["schema_version"] == ATIF_VERSION == "ATIF-v1.4"
    assert [s["step_id"] for s in doc["steps"]] == list(range(1, len(prefix) + 4))
    assert doc["steps"][0]["source"] == "system" and doc["steps"][0]["message"] == prefix[0]["content"]
    question, act, final = doc["steps"][len(prefix):]
    assert question == {"step_id": len(prefix) + 1, "source": "user", "message": "Question: What is 2 + 3?"}
    assert act["source"] == "agent" and act["message"] == REPLIES[0] and act["reasoning_content"] == "add"
    call = act["tool_calls"][0]
    assert call["function_name"] == "calculator" and call["arguments"] == {"input": "2+3"}
    assert act["observation"]["results"] == [{"source_call_id": call["tool_call_id"], "content": "5"}]
    assert final["message"] == REPLIES[1] and "tool_calls" not in final
    assert atif.agent.name == "ponder-react" and doc["extra"]["final_answer"] == "5"
    assert doc["final_metrics"]["total_steps"] == len(doc["steps"])


def test_atif_schema_rejects_what_the_rfc_forbids():
    base = {"session_id": "s", "agent": {"name": "a", "version": "1"}}
    user = {"step_id": 1, "source": "user", "message": "hi"}
    AtifTrajectory.model_validate({**base, "steps": [user]})
    bad = [
        [{**user, "step_id": 2}],  # ids start at 1
        [{**user, "source": "tool"}],  # system, user or agent only
        [{**user, "reasoning_content": "x"}],  # agent-only field on a user step
        [{"step_id": 1, "source": "agent", "message": "", "observation": {"results": [{"source_call_id": "c9"}]}}],
        [{**user, "colour": "red"}],  # no field the RFC does not define
    ]
    for steps in bad:
        with pytest.raises(ValidationError):
            AtifTrajectory.model_validate({**base, "steps": steps})
