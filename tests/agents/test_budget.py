"""The context budget: prompts fitted into a tiny context window instead of failing on length."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.agents.budget import ELIDED_NOTE, MIN_COMPLETION_TOKENS, elide, fit_prompt
from ponder.agents.env import run_env_agent
from ponder.agents.runner import run_agent
from ponder.core.environment import EnvReset, EnvStep
from ponder.core.errors import ModelError
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, Message
from ponder.models.scripted import ScriptedModel

SYSTEM: Message = {"role": "system", "content": "You are an agent."}
SHOT: list[Message] = [{"role": "user", "content": "Question: example"}, {"role": "assistant", "content": "Answer"}]


def history(turns: int, words: int = 10) -> list[Message]:
    """The question, then ``turns`` (reply, observation) pairs of ``words`` words each."""
    out: list[Message] = [{"role": "user", "content": "Question: q"}]
    for i in range(turns):
        out.append({"role": "assistant", "content": f"act{i} " + "a " * (words - 1)})
        out.append({"role": "user", "content": f"Observation: obs{i} " + "o " * (words - 2)})
    return out


class StrictModel(ScriptedModel):
    """Fails like llama.cpp when the prompt and the reply do not fit its context."""

    def generate(self, messages: list[Message], params: GenerationParams):  # type: ignore[no-untyped-def]
        window = self.capabilities.context_window
        size = self.count_tokens(messages)
        if window is not None and size + params.max_tokens > window:
            raise ModelError(f"the prompt has {size} tokens but the context holds {window}")
        return super().generate(messages, params)


def test_unbounded_context_counts_nothing() -> None:
    class NoCount(ScriptedModel):
        def count_tokens(self, messages: list[Message]) -> int:
            raise AssertionError("counted without a context window")

    fitted = fit_prompt(NoCount([]), [SYSTEM], history(30), None, GenerationParams())
    assert fitted.elided == 0 and len(fitted.messages) == 1 + 61


def test_a_prompt_that_fits_is_sent_whole() -> None:
    model = ScriptedModel([], context_window=10_000)
    fitted = fit_prompt(model, [SYSTEM, *SHOT], history(3), "Lessons: be brief.", GenerationParams())
    assert fitted.elided == 0 and fitted.params.max_tokens == 256
    assert fitted.messages[3]["content"].startswith("Lessons: be brief.\n\nQuestion: q")


def test_the_oldest_observations_are_elided_first_and_only_as_many_as_needed() -> None:
    model = ScriptedModel([], context_window=300)
    params = GenerationParams(max_tokens=100)
    turns = history(10)  # 10 pairs of 14 tokens each + the question
    fitted = fit_prompt(model, [SYSTEM, *SHOT], turns, None, params)
    assert 0 < fitted.elided <= 8
    assert model.count_tokens(fitted.messages) + params.max_tokens <= 300
    # one fewer elided observation would not fit: the fewest were elided
    assert model.count_tokens([SYSTEM, *SHOT, *elide(turns, fitted.elided - 1)]) + params.max_tokens > 300
    sent = fitted.messages
    assert sent[:3] == [SYSTEM, *SHOT]  # system prompt and few-shot turns kept
    assert sent[3]["content"] == f"Question: q\n\n{ELIDED_NOTE.format(n=fitted.elided)}"  # one line says so
    assert sent[-4:] == turns[-4:]  # the last steps kept
    assert sent[4] == turns[1 + 2 * fitted.elided]  # the oldest turns went
    assert f"obs{fitted.elided - 1} " not in " ".join(m["content"] for m in sent)
    assert f"obs{fitted.elided} " in " ".join(m["content"] for m in sent)


def test_when_nothing_more_can_go_max_tokens_shrinks_to_a_floor_and_nothing_raises() -> None:
    model = ScriptedModel([], context_window=120)
    fitted = fit_prompt(model, [SYSTEM], history(6, words=20), None, GenerationParams(max_tokens=200))
    assert fitted.elided == 4  # all but the last two observations
    room = 120 - model.count_tokens(fitted.messages)
    assert fitted.params.max_tokens == max(MIN_COMPLETION_TOKENS, room) < 200
    tiny = ScriptedModel([], context_window=10)
    floor = fit_prompt(tiny, [SYSTEM], history(1), None, GenerationParams(max_tokens=200))
    assert floor.params.max_tokens == MIN_COMPLETION_TOKENS and floor.elided == 0


class Corridor:
    """A long corridor: every step shows a long room description; ``go east`` 30 times wins."""

    name = "corridor"
    instructions = "Actions: go east."
    examples = ""

    def __init__(self) -> None:
        self.position = 0

    def _room(self) -> str:
        return f"Room {self.position}. " + "The walls are covered in old maps and faded paintings. " * 4

    def reset(self) -> EnvReset:
        self.position = 0
        return EnvReset(observation=self._room() + "Your task is to: reach the end.", admissible_actions=["go east"])

    def step(self, action: str) -> EnvStep:
        self.position += 1
        won = self.position >= 30
        return EnvStep(observation=self._room(), reward=float(won), done=won, info={"won": won},
                       admissible_actions=["go east"])

    def close(self) -> None:
        pass


def test_a_long_episode_in_a_tiny_context_does_not_die_on_length(tmp_path: Path) -> None:
    window = 700
    model = StrictModel(["go east"], repeat_last=True, context_window=window)
    settings = load_settings(out_dir=tmp_path, max_tokens=64)
    run = run_env_agent(Corridor(), "reach the end", model=model, settings=settings, max_steps=40)
    assert run.error is None and run.success and run.env_steps == 30  # whole episode, no ModelError
    assert run.trajectory.metadata["elided_observations"] > 0
    assert all(model.count_tokens(call) + 64 <= window for call in model.calls)
    assert ELIDED_NOTE.split("{n}")[1] in model.calls[-1][1]["content"]


def test_without_the_budget_the_same_episode_fails_on_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ponder.agents import kernel
    from ponder.agents.budget import FittedPrompt
    from ponder.memory.nodes import compose

    def send_everything(model, prefix, history, lessons, params):  # type: ignore[no-untyped-def]
        return FittedPrompt(compose(prefix, history, lessons), params)

    monkeypatch.setattr(kernel, "fit_prompt", send_everything)
    model = StrictModel(["go east"], repeat_last=True, context_window=700)
    settings = load_settings(out_dir=tmp_path, max_tokens=64)
    run = run_env_agent(Corridor(), "reach the end", model=model, settings=settings, max_steps=40)
    assert run.error is not None and "context holds 700" in run.error and not run.success
    assert 0 < run.env_steps < 30


def test_react_run_in_a_tiny_context_records_the_elision(tmp_path: Path) -> None:
    def echo(text: str) -> str:
        """Repeat the text many times."""
        return " ".join([text] * 40)

    model = StrictModel(["Action: echo\nAction Input: hello"], repeat_last=True, context_window=600)
    traj = run_agent("Say hello.", model=model, tools=[echo], settings=load_settings(out_dir=tmp_path, max_steps=10,
                                                                                     max_tokens=32))
    assert traj.status == "max_steps" and len(traj.steps) == 10 and traj.error is None
    assert traj.metadata["elided_observations"] > 0
