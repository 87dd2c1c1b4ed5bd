"""Every strategy end to end from the command line against the real llama.cpp OpenAI-compatible server.

``ponder run "..." --model openai:smollm2@<url> --strategy X`` with small budgets: each strategy runs its real
algorithm (best-of-N's samples, beam's candidates, LATS's tree, refine's rounds, adaptive's first pass) on the
served SmolLM2, its verifier's calls go through the server too (``self`` scores the digits with the server's
``top_logprobs``), and the JSON summary reports what was spent. The answers of a 135M model are not checked:
the machinery is (a run that spent nothing, or a search without a tree, fails).
"""

from __future__ import annotations

import json

import pytest

from ponder.cli import main

pytestmark = pytest.mark.integration

QUESTION = "What is 12 + 30?"

CASES = {
    "sc": ["--samples", "2"],
    "best_of_n": ["--samples", "2", "--verifier", "self"],
    "refine": ["--rounds", "1", "--verifier", "self", "--accept", "0.99"],
    "beam": ["--beam-width", "2", "--expansions", "2", "--verifier", "self", "--budget", "6000t"],
    "lats": ["--expansions", "2", "--iterations", "2", "--verifier", "self", "--budget", "6000t"],
    "adaptive": ["--verifier", "self", "--budget", "4s"],
}


@pytest.mark.parametrize("strategy", list(CASES))
def test_each_strategy_runs_on_the_served_model(strategy, llama_server, tmp_path, capsys):
    spec = f"openai:smollm2@{llama_server}"
    code = main(["run", QUESTION, "--model", spec, "--strategy", strategy, *CASES[strategy], "--max-steps", "3",
                 "--max-tokens", "48", "--out", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["strategy"] == strategy
    usage = summary["usage"]
    assert usage["model_calls"] >= 2 and usage["prompt_tokens"] > 0
    if strategy == "sc":
        assert summary["samples_run"] == 2 and len(summary["votes"]) >= 1
        return
    assert summary["status"] in ("solved", "max_steps", "parse_error", "error")
    if strategy in ("beam", "lats"):
        trees = (tmp_path / "search.jsonl").read_text().splitlines()
        assert trees and len(json.loads(trees[-1])["nodes"]) > 1
    assert summary["trajectories"] and summary["chosen_trajectory"] in summary["trajectories"]
    if strategy in ("best_of_n", "refine", "beam", "lats", "adaptive"):  # the verifier scored through the server
        assert summary["score"] is not None and 0.0 <= summary["score"] <= 1.0
