"""Run the ReAct agent with the calculator on the embedded model (offline, CPU).

    .venv/bin/python examples/react_calculator.py "What is 17 * 23 - 4?"
"""

import sys

from ponder import load_settings, run_agent

question = sys.argv[1] if len(sys.argv) > 1 else "A farmer has 17 rows of 23 apple trees. How many trees is that?"
settings = load_settings(model="embedded", max_steps=4, max_tokens=96, out_dir="runs/examples")
trajectory = run_agent(question, agent="react", settings=settings,
                       on_step=lambda step: print(step.raw, "\n->", step.observation))
print("answer:", trajectory.final_answer, "| status:", trajectory.status, "| usage:", trajectory.usage)
