"""Native tool-call steps in the strategies: the search stepper and self-consistency (scripted native model)."""

from __future__ import annotations

from ponder.graphs.search.stepper import Stepper
from ponder.graphs.self_consistency import SCConfig, run_self_consistency
from ponder.graphs.strategies.base import StrategyContext
from ponder.models.base import Completion, GenerationParams, Message, ToolCall
from ponder.models.scripted import ScriptedModel


def native_model() -> ScriptedModel:
    """Calls the calculator until a tool result is in the conversation, then answers it."""

    def respond(messages: list[Message], params: GenerationParams) -> Completion:
        assert params.tools and params.tool_choice == "auto"
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if results:
            return Completion(text=f"Final Answer: {results[-1]}")
        return Completion(text="", tool_calls=[ToolCall(id=f"s{params.seed}", name="calculator",
                                                        arguments='{"expression": "6 * 7"}')])

    return ScriptedModel(respond, tool_calls=True)


def test_the_stepper_runs_native_steps_in_fresh_tools(settings):
    stepper = Stepper(StrategyContext(settings=settings, model=native_model()), "What is 6 * 7?", temperature=0.7)
    acted = stepper.step(stepper.root(), 0)
    assert acted.step.tool_call_id and acted.step.observation == "42" and not acted.partial.terminal
    assert [m["role"] for m in acted.step.to_messages()] == ["assistant", "tool"]
    done = stepper.step(acted.partial, 1)
    assert done.partial.status == "solved" and done.partial.state["final_answer"] == "42"


def test_self_consistency_votes_over_native_runs(settings):
    result = run_self_consistency("What is 6 * 7?", config=SCConfig(samples=3), settings=settings,
                                  model=native_model())
    assert result.final_answer == "42" and result.samples_run == 3
    runs = [s.trajectory for s in result.samples]
    assert all(t.metadata.get("tool_protocol") == "native" and t.steps[0].tool_call_id for t in runs)


def test_distinct_native_calls_with_empty_text_are_not_a_loop():
    from ponder.core.records import Step
    from ponder.graphs.search.stepper import LOOP_WINDOW, Partial, repeating

    def call(i: int, expression: str) -> Step:
        arguments = f'{{"expression": "{expression}"}}'
        return Step(index=i, kind="action", raw="", action="calculator", action_input=arguments, observation="1",
                    tool_call_id=f"c{i}")

    distinct = [call(i, f"{i} + 1") for i in range(LOOP_WINDOW)]
    same = [call(i, "1 + 1") for i in range(LOOP_WINDOW)]
    assert not repeating(Partial(state={"steps": distinct}))
    assert repeating(Partial(state={"steps": same}))
