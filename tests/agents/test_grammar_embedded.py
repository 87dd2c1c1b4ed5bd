"""Grammar-constrained steps on the real embedded model (SmolLM2-135M on llama.cpp): the grammars compile in the
backend, and its constrained replies are well-formed steps where its free replies are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.agents.env import parse_turn
from ponder.agents.grammar import env_grammar, pal_grammar
from ponder.agents.parsing import extract_code
from ponder.agents.runner import run_agent
from ponder.core.prompts import render
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, ModelBackend

pytestmark = pytest.mark.integration

#: The issue's example: free, the model writes "Thought: 12 * 7 + 5" (or a wrong Action) and never a usable step.
QUESTION = "What is 12 times 7 plus 5?"
GSM = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
]


@pytest.fixture(scope="module")
def embedded() -> Iterator[ModelBackend]:
    from ponder.models.spec import load_model

    model = load_model("embedded", load_settings(model="embedded", llamacpp_threads=2))
    assert model.backend_name == "llamacpp" and model.capabilities.grammar, model.load_info
    yield model
    model.close()


@pytest.mark.parametrize("question", [QUESTION, *GSM])
def test_constrained_react_steps_are_well_formed(embedded: ModelBackend, tmp_path: Path, question: str) -> None:
    settings = load_settings(model="embedded", out_dir=tmp_path, temperature=0.0, max_steps=3, tools=["calculator"])
    traj = run_agent(question, settings=settings, model=embedded, write=False)
    assert traj.metadata["grammar"] == "react"
    assert traj.steps and all(s.kind in ("action", "final") for s in traj.steps), [s.raw for s in traj.steps]
    first = traj.steps[0]
    assert first.raw.startswith("Thought: ") and (first.action == "calculator" or first.kind == "final"), first.raw
    if first.action == "calculator":
        assert not first.observation.startswith("Error: could not parse"), first  # a well-formed expression


def test_free_steps_are_not_constrained(embedded: ModelBackend, tmp_path: Path) -> None:
    settings = load_settings(model="embedded", out_dir=tmp_path, temperature=0.0, max_steps=1, max_tokens=60,
                             constrained_steps="off", tools=["calculator"])
    traj = run_agent(QUESTION, settings=settings, model=embedded, write=False)
    assert "grammar" not in traj.metadata and len(traj.steps) == 1


def test_a_constrained_pal_reply_is_one_solution_block(embedded: ModelBackend) -> None:
    messages = [{"role": "system", "content": render("pal_system")}, {"role": "user", "content": f"Question: {GSM[0]}"}]
    [done] = embedded.generate(messages, GenerationParams(temperature=0.0, max_tokens=400, grammar=pal_grammar()))
    code = extract_code(done.text)
    assert done.finish_reason == "stop" and done.text.startswith("```python\ndef solution():\n"), done.text
    assert code is not None and done.text.rstrip().endswith("```")
    compile(code, "<pal>", "exec")  # the small model's programs are usually valid Python; this one is (greedy)


def test_a_constrained_env_turn_is_an_admissible_action_or_a_thought(embedded: ModelBackend) -> None:
    admissible = ["open box", "take key", "look", "go north"]
    messages = [{"role": "system", "content": render("env_system", instructions="")},
                {"role": "user", "content": "You see a closed box. Your task is to: take the key.\n"
                                            f"Admissible actions: {', '.join(admissible)}"}]
    for seed in range(3):
        params = GenerationParams(temperature=0.8, seed=seed, max_tokens=80, grammar=env_grammar(admissible, 200))
        [done] = embedded.generate(messages, params)
        turn = parse_turn(done.text)
        assert done.finish_reason == "stop" and (turn.kind == "think" or turn.text in admissible), done.text
