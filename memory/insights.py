"""ExpeL insights: the model edits a numbered list of general insights with ``ADD`` / ``EDIT`` / votes.

Operation grammar (one per line, case-insensitive; bullets, ``**`` and ``#`` before numbers are tolerated)::

    ADD: <insight>              new insight, score 2
    EDIT <n>: <insight>         replace insight n's text, +1 vote
    UPVOTE <n>                  +1 vote   (ExpeL's AGREE is accepted too)
    DOWNVOTE <n>                -1 vote   (ExpeL's REMOVE is accepted too); at 0 the insight is deleted

``n`` indexes the numbered list shown in the prompt (1-based). Other non-blank lines, out-of-range numbers
and empty texts are ignored and counted. Insights enter the system prompt ranked by score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ponder.core.prompts import render
from ponder.memory.context import MemoryContext
from ponder.memory.schema import Insight, WriteResult
from ponder.models.base import GenerationParams, Message, ModelBackend

OpName = Literal["ADD", "EDIT", "UPVOTE", "DOWNVOTE"]
#: Operations asked for per extraction prompt.
MAX_OPS = 5
#: Score of a new insight (as in ExpeL).
NEW_SCORE = 2.0
_SYNONYMS = {"AGREE": "UPVOTE", "REMOVE": "DOWNVOTE"}
_OP = re.compile(
    r"^(?P<op>ADD|EDIT|UPVOTE|DOWNVOTE|AGREE|REMOVE)\b\s*(?:(?:insight|rule)\s*)?#?\s*(?P<n>\d+)?\s*"
    r"(?:[:\-\u2013]\s*(?P<text>.*))?$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)])?\s*")


@dataclass(frozen=True)
class InsightOp:
    """One parsed operation; ``index`` is 1-based (``None`` for ``ADD``)."""

    op: OpName
    index: int | None = None
    text: str = ""


@dataclass
class ParsedOps:
    """The operations in a reply and the lines that were not operations."""

    ops: list[InsightOp] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def parse_insight_ops(text: str, count: int) -> ParsedOps:
    """Parse a reply into operations on a numbered list of ``count`` insights (never raises).

    Args:
        text: The model's reply.
        count: How many insights the prompt listed (valid ``n`` are ``1..count``).
    """
    out = ParsedOps()
    for raw in text.splitlines():
        line = _BULLET.sub("", raw.replace("**", "")).strip()
        if not line:
            continue
        op = _parse_line(line, count)
        if op is None:
            out.invalid.append(raw.strip())
        else:
            out.ops.append(op)
    return out


def _parse_line(line: str, count: int) -> InsightOp | None:
    match = _OP.match(line)
    if match is None:
        return None
    name = match["op"].upper()
    name = _SYNONYMS.get(name, name)
    text = " ".join((match["text"] or "").split())
    if name == "ADD":
        return InsightOp("ADD", text=text) if text else None
    if match["n"] is None or not 1 <= int(match["n"]) <= count:
        return None
    if name == "EDIT" and not text:
        return None
    return InsightOp(name, int(match["n"]), text if name == "EDIT" else "")  # type: ignore[arg-type]


@dataclass
class ApplyReport:
    """What applying operations did (``results`` are the store's answers, one per write)."""

    added: int = 0
    edited: int = 0
    upvoted: int = 0
    downvoted: int = 0
    deleted: list[str] = field(default_factory=list)
    skipped: int = 0
    results: list[WriteResult] = field(default_factory=list)


def apply_insight_ops(ctx: MemoryContext, insights: Sequence[Insight], ops: Sequence[InsightOp],
                      task: str = "") -> ApplyReport:
    """Apply ``ops`` to ``insights`` (the numbered list the model saw) through ``ctx`` (so writes can be held).

    Votes on one insight are combined and written once; an insight at 0 votes or below is deleted and later
    operations on it are skipped.
    """
    report = ApplyReport()
    current = [ins.model_copy() for ins in insights]
    changed: set[int] = set()
    gone: set[int] = set()
    for op in ops:
        if op.op == "ADD":
            record = ctx.stamp(Insight(text=op.text, score=NEW_SCORE), task)
            report.results.append(ctx.add(record))
            report.added += 1
            continue
        assert op.index is not None
        i = op.index - 1
        if i in gone:
            report.skipped += 1
            continue
        ins = current[i]
        if op.op == "EDIT":
            ins.text, ins.score = op.text, ins.score + 1
            report.edited += 1
        elif op.op == "UPVOTE":
            ins.score += 1
            report.upvoted += 1
        else:
            ins.score -= 1
            report.downvoted += 1
            if ins.score <= 0:
                gone.add(i)
                changed.discard(i)
                ctx.delete(ins.id)
                report.deleted.append(ins.id)
                continue
        changed.add(i)
    for i in sorted(changed):
        report.results.append(ctx.update(current[i]))
    return report


def ranked_insights(ctx: MemoryContext, limit: int | None = None) -> list[Insight]:
    """The namespace's insights, highest score first (oldest first among equals)."""
    records = ctx.store.list("insight", namespace=ctx.namespace, limit=1000)
    insights = [r for r in records if isinstance(r, Insight)]
    insights.sort(key=lambda r: (-r.score, r.created))
    return insights if limit is None else insights[:limit]


def numbered(insights: Sequence[Insight]) -> str:
    """The list shown to the extraction prompt: ``1. text`` lines, or ``(none yet)``."""
    return "\n".join(f"{i}. {ins.text}" for i, ins in enumerate(insights, 1)) or "(none yet)"


def insights_section(insights: Sequence[Insight]) -> str | None:
    """The "Insights from past tasks" block (``prompts/memory_insights.txt``), or ``None`` without insights."""
    if not insights:
        return None
    return render("memory_insights", insights="\n".join(f"- {ins.text}" for ins in insights))


@dataclass
class InsightUpdate:
    """One extraction round: the reply, what was parsed, what was applied."""

    reply: str
    parsed: ParsedOps
    report: ApplyReport


def _extract(ctx: MemoryContext, model: ModelBackend, params: GenerationParams, prompt_name: str,
             task: str, **values: str) -> InsightUpdate:
    insights = ranked_insights(ctx)
    content = render(prompt_name, insights=numbered(insights), max_ops=str(MAX_OPS), **values)
    prompt: list[Message] = [{"role": "user", "content": content}]
    reply = model.generate(prompt, params.model_copy(update={"n": 1, "stop": []}))[0].text
    parsed = parse_insight_ops(reply, len(insights))
    return InsightUpdate(reply, parsed, apply_insight_ops(ctx, insights, parsed.ops, task))


def compare_trajectories(ctx: MemoryContext, model: ModelBackend, params: GenerationParams, task: str,
                         failed: str, succeeded: str) -> InsightUpdate:
    """Compare a failed and a successful attempt at ``task`` (compact texts) and update the insights."""
    return _extract(ctx, model, params, "expel_compare", task, failed=failed, succeeded=succeeded)


def learn_from_successes(ctx: MemoryContext, model: ModelBackend, params: GenerationParams,
                         successes: Sequence[str]) -> InsightUpdate:
    """Find what a batch of successful attempts (compact texts) share and update the insights."""
    text = "\n\n".join(f"Attempt {i}:\n{s}" for i, s in enumerate(successes, 1))
    return _extract(ctx, model, params, "expel_success", "", successes=text)
