"""The stepper: the kernel one step at a time, each child in its own fork / tools / executor, as a replay sees it."""

from __future__ import annotations

from searchkit import Counter, TreeEnv, seeded_env_model

from ponder.core.environment import replay
from ponder.core.records import Step
from ponder.graphs.search.stepper import Partial, Stepper, apply_update, repeating
from ponder.graphs.strategies.base import StrategyContext
from ponder.models.base import GenerationParams, Message
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import FunctionTool
from ponder.tools.executor import ExecResult


def env_stepper(settings, model, *, winning=("a", "b", "c"), counter=None, max_steps=6, **kwargs):
    counter = counter or Counter()
    ctx = StrategyContext(settings=settings, model=model, max_steps=max_steps,
                          env=lambda: TreeEnv(winning, 3, counter))
    return Stepper(ctx, "find it", temperature=0.7, **kwargs), counter


def test_children_act_in_their_own_forks_and_match_a_replay(settings):
    stepper, counter = env_stepper(settings, seeded_env_model())
    root = stepper.root()
    children = [stepper.step(root, seed) for seed in range(3)]
    assert [c.partial.actions for c in children] == [("a",), ("b",), ("c",)]
    grand = stepper.step(children[1].partial, 5)  # seed 5 picks "c": b/c
    assert grand.partial.actions == ("b", "c")
    env = TreeEnv(("a", "b", "c"), 3, counter)
    first, answers = replay(env, grand.partial.actions)
    env.close()
    observed = [s.observation for s in grand.partial.steps]
    assert observed == [a.observation for a in answers] == ["You are at b.", "You are at b/c."]
    assert root.state["messages"][0]["content"] == first.observation
    assert counter.made == counter.closed  # every fork closed after its step
    # 1 root reset + 4 forks; env steps: the 4 new actions and the 1 replayed one ("b")
    assert (stepper.env_resets, stepper.env_steps) == (5, 5) == (counter.resets - 1, counter.steps - 2)


def test_a_winning_move_ends_the_run_solved(settings):
    stepper, _ = env_stepper(settings, seeded_env_model(), winning=("c",))
    moved = stepper.step(stepper.root(), 2)
    assert moved.partial.terminal and moved.partial.won and moved.partial.status == "solved"
    trace = stepper.trace(moved.partial)
    assert trace.won is True and trace.done and trace.reward == 1.0
    traj = stepper.trajectory(moved.partial, {"k": 1})
    assert traj.agent == "env" and traj.final_answer == "won" and traj.metadata["reward"] == 1.0
    assert traj.metadata["env"] == "tree" and traj.metadata["k"] == 1 and traj.usage.model_calls == 1


def test_routes_set_the_kernel_statuses(settings):
    empty = ScriptedModel([""], repeat_last=True)
    stepper, _ = env_stepper(settings, empty)
    current = stepper.root()
    for seed in range(3):
        current = stepper.step(current, seed).partial
    assert current.status == "parse_error"
    invalid = ScriptedModel(["zz"], repeat_last=True)
    stepper, _ = env_stepper(settings, invalid, max_steps=2)
    moves = stepper.rollout(stepper.root(), list(range(10)))
    assert len(moves) == 2 and moves[-1].partial.status == "max_steps"
    assert moves[-1].partial.actions == ("zz", "zz")


def test_thoughts_fold_into_the_move_of_their_action(settings):
    def reply(messages: list[Message], params: GenerationParams) -> str:
        return "think: which way?" if (params.seed or 0) < 1000 else "b"

    stepper, _ = env_stepper(settings, ScriptedModel(reply))
    moved = stepper.step(stepper.root(), 1)
    assert [s.action for s in moved.steps] == ["think", "b"] and moved.partial.actions == ("b",)
    plain, _ = env_stepper(settings, ScriptedModel(reply), think_steps=0)
    single = plain.step(plain.root(), 1)
    assert [s.action for s in single.steps] == ["think"] and single.partial.actions == ()


def test_lessons_go_in_front_of_the_first_turn_of_that_call_only(settings):
    model = seeded_env_model()
    stepper, _ = env_stepper(settings, model)
    root = stepper.root()
    child = stepper.step(root, 0, lessons="LESSON: try b")
    first_user = next(m for m in model.calls[-1] if m["content"].startswith("LESSON"))
    assert "You are at the root" in first_user["content"]
    assert "lessons" not in child.partial.state["memory"] or not child.partial.state["memory"]["lessons"]


def test_react_children_get_fresh_tools_closed_after(settings):
    closed: list[str] = []

    class Counting(FunctionTool):
        def close(self) -> None:
            closed.append(self.name)

    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return str(eval(expression, {"__builtins__": {}}))  # test-only tool over fixed expressions

    script = ["Thought: add\nAction: calculator\nAction Input: 2 + 3", "Thought: done\nFinal Answer: 5"]
    ctx = StrategyContext(settings=settings, model=ScriptedModel(script), tools=lambda: [Counting(calculator)])
    stepper = Stepper(ctx, "What is 2 + 3?", temperature=0.7)
    root = stepper.root()
    acted = stepper.step(root, 0)
    assert acted.step.observation == "5" and not acted.partial.terminal
    done = stepper.step(acted.partial, 1)
    assert done.partial.status == "solved" and done.partial.state["final_answer"] == "5"
    assert closed == ["calculator"] * 3  # root, then one session per step


def test_pal_children_get_a_fresh_executor_each(settings):
    made: list[object] = []

    class FakeExecutor:
        """Returns a canned value; runs nothing."""

        def __init__(self) -> None:
            self.closed = False
            made.append(self)

        def run(self, code: str) -> ExecResult:
            return ExecResult(value="42")

        def close(self) -> None:
            self.closed = True

    ctx = StrategyContext(settings=settings, model=ScriptedModel(["```python\ndef solution():\n    return 42\n```"]),
                          agent="pal", executor=FakeExecutor)
    stepper = Stepper(ctx, "What is 6 * 7?", temperature=0.7)
    moved = stepper.step(stepper.root(), 0)
    assert moved.partial.status == "solved" and moved.partial.state["final_answer"] == "42"
    assert len(made) == 2 and all(e.closed for e in made)


def test_a_failing_environment_ends_the_child_with_an_error(settings):
    class Broken(TreeEnv):
        def step(self, action: str):
            raise RuntimeError("the game crashed")

    ctx = StrategyContext(settings=settings, model=seeded_env_model(), env=lambda: Broken(("a",)))
    stepper = Stepper(ctx, "find it", temperature=0.7)
    moved = stepper.step(stepper.root(), 0)
    assert moved.partial.status == "error" and "the game crashed" in moved.error and moved.steps == []


def test_apply_update_and_repeating():
    state = {"steps": [], "messages": [{"role": "user", "content": "q"}], "x": 1}
    new = apply_update(state, {"messages": [{"role": "assistant", "content": "a"}], "x": 2})
    assert len(new["messages"]) == 2 and new["x"] == 2 and len(state["messages"]) == 1
    assert not repeating(Partial({"steps": []}))


def test_env_moves_are_admissible_actions_only_under_a_grammar(settings):
    grammars: list[str | None] = []

    def reply(messages: list[Message], params: GenerationParams) -> str:
        grammars.append(params.grammar)
        return "b"

    model = ScriptedModel(reply)
    model.capabilities = model.capabilities.model_copy(update={"grammar": True})
    stepper, _ = env_stepper(settings, model, actions_only=True)
    assert stepper.step(stepper.root(), 0).partial.actions == ("b",)
    assert grammars[-1] == 'root ::= "a" | "b" | "c"'  # no "think: ..." alternative
    free, _ = env_stepper(settings, model)  # thoughts allowed: the settings' auto mode leaves env turns free
    free.step(free.root(), 0)
    assert grammars[-1] is None
    off = settings.model_copy(update={"constrained_steps": "off"})
    unconstrained, _ = env_stepper(off, model, actions_only=True)
    unconstrained.step(unconstrained.root(), 0)
    assert grammars[-1] is None


def test_excluded_actions_are_left_out_of_a_move_and_only_then(settings):
    model = seeded_env_model()
    stepper, _ = env_stepper(settings, model)
    root = stepper.root()
    moved = stepper.step(root, 0, exclude=["a"])
    assert moved.partial.actions == ("b",)  # seed 0 picks the first shown action: "a" is not shown
    assert model.calls[-1][-1]["content"].endswith("Admissible actions: b, c")
    assert moved.partial.state["admissible"] == ["a", "b", "c"]  # the env's list again after the move
    assert stepper.step(root, 0, exclude=["a", "b", "c"]).partial.actions == ("a",)  # none left: ignored


def test_a_model_alternating_two_replies_is_looping():
    def steps(*raws):
        return Partial({"steps": [Step(index=i, kind="action", raw=r) for i, r in enumerate(raws)]})

    assert repeating(steps("take egg", "drop egg", "take egg", "drop egg"))
    assert repeating(steps("look", "look", "look", "look"))
    assert not repeating(steps("look", "open safe", "take bowl", "look"))
    assert not repeating(steps("look", "look", "look"))
