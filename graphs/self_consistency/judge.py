"""Best-of-N with an LLM judge: the model reads the distinct candidate answers and picks one.

The judge sees each distinct answer once (with its vote count and one sample's reasoning), answers greedily,
and must end with ``Best: N``. An unusable reply falls back to the vote's leader (recorded as ``fallback``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ponder.core.prompts import render
from ponder.core.settings import Settings
from ponder.graphs.self_consistency.records import JudgeRecord, SampleRecord
from ponder.graphs.self_consistency.voting import VoteTable
from ponder.models.base import GenerationParams, ModelBackend

_BEST = re.compile(r"best\s*[:=]?\s*(?:candidate\s*)?#?(\d+)", re.IGNORECASE)
#: Characters of one sample's reasoning shown per candidate.
REASONING_CHARS = 600


def reasoning(sample: SampleRecord) -> str:
    """A short account of how a sample reached its answer: its thoughts and tool observations."""
    parts = []
    for step in sample.trajectory.steps:
        if step.thought:
            parts.append(step.thought.strip())
        if step.action:
            parts.append(f"[{step.action}] {(step.action_input or '').strip()} -> {(step.observation or '').strip()}")
    text = " ".join(parts)
    return text if len(text) <= REASONING_CHARS else text[: REASONING_CHARS - 3] + "..."


def judge_prompt(task: str, table: VoteTable, samples: list[SampleRecord]) -> str:
    """The judge's prompt listing every distinct answer once."""
    by_index = {s.index: s for s in samples}
    blocks = []
    for n, row in enumerate(table.rows, 1):
        why = reasoning(by_index[row.samples[0]]) if row.samples[0] in by_index else ""
        blocks.append(f"Candidate {n}: {row.answer}\n  given by {row.votes} attempt(s). Reasoning: {why or '(none)'}")
    return render("sc_judge", task=task, candidates="\n\n".join(blocks))


def parse_choice(text: str, options: int) -> int | None:
    """The 1-based candidate the judge picked (the last ``Best: N``), or ``None`` when unusable."""
    matches = _BEST.findall(text)
    if not matches:
        return None
    choice = int(matches[-1])
    return choice if 1 <= choice <= options else None


def make_judge(model: ModelBackend, settings: Settings) -> Callable[[str, VoteTable, list[SampleRecord]], JudgeRecord]:
    """A judge function over ``model`` (greedy, ``settings.max_tokens`` tokens)."""
    params = GenerationParams(temperature=0.0, max_tokens=settings.max_tokens, seed=settings.seed)

    def judge(task: str, table: VoteTable, samples: list[SampleRecord]) -> JudgeRecord:
        prompt = judge_prompt(task, table, samples)
        completion = model.generate([{"role": "user", "content": prompt}], params)[0]
        choice = parse_choice(completion.text, len(table.rows))
        return JudgeRecord(choice=choice, raw=completion.text, fallback=choice is None,
                           prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)

    return judge
