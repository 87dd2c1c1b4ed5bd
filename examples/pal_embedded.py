"""PAL on the embedded model: the model writes solution(), an isolated subprocess runs it.

    .venv/bin/python examples/pal_embedded.py "Tom has 3 bags of 8 marbles. He gives away 5. How many are left?"
"""

import sys

from ponder import load_settings, run_agent

question = sys.argv[1] if len(sys.argv) > 1 else "Tom has 3 bags of 8 marbles. He gives away 5. How many are left?"
settings = load_settings(max_tokens=160, out_dir="runs/examples")
trajectory = run_agent(question, agent="pal", settings=settings)
for step in trajectory.steps:
    print(step.action_input or step.raw, "\n->", step.observation)
print("answer:", trajectory.final_answer, "| status:", trajectory.status)
