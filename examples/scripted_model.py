"""Drive an agent with the scripted model: no weights, deterministic. Handy for tests and demos of the machinery.

    .venv/bin/python examples/scripted_model.py
"""

from ponder import load_settings, run_agent
from ponder.models.scripted import ScriptedModel


def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


model = ScriptedModel([
    "Thought: I should count the words.\nAction: word_count\nAction Input: the quick brown fox",
    "Thought: I now know the final answer\nFinal Answer: 4",
])
settings = load_settings(out_dir="runs/examples")
trajectory = run_agent("How many words are in 'the quick brown fox'?", model=model, tools=[word_count],
                       settings=settings)
for step in trajectory.steps:
    print(f"{step.index}: {step.kind:<6} action={step.action} input={step.action_input!r} obs={step.observation!r}")
print("answer:", trajectory.final_answer, "status:", trajectory.status)
print("the model saw this conversation on its last call:")
for message in model.calls[-1][1:]:
    print(f"  [{message['role']}] {message['content']!r}")
