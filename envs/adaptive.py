"""Suite-level compute-optimal allocation: ``ponder eval SUITE --strategy adaptive --budget-total 200000t``.

Two phases, each an ordinary :func:`~ponder.envs.runner.run_eval` run (so workers, per-episode timeouts,
progress, fsynced results and ``--resume`` work as always), coordinated by a plan file
(:data:`~ponder.graphs.strategies.adaptive.PLAN_FILE`) that the :class:`~ponder.graphs.strategies.adaptive.Adaptive`
strategy reads from the run directory:

1. **First pass** (``<out>/first_pass/``): every episode runs two samples, each scored by the verifier; the
   samples (answer, vote key, score, tokens) go to that directory's ledger. No label is looked at.
2. **Allocation**: the rest of the budget (``budget_total`` minus what the first pass spent) is spread greedily
   by expected gain per token (:func:`~ponder.graphs.strategies.allocation.allocate`; the gain model: a Beta
   posterior of the per-sample accuracy from the verifier scores, discounted by the confidence that the current
   best answer is right, documented in :mod:`ponder.graphs.strategies.allocation`). Easy episodes (agreeing
   samples, score >= ``--accept``) get nothing.
3. **Final run** (``<out>/``): every episode continues from its first-pass samples with the extra samples it
   was given (each episode stops before a sample would pass its token cap) and answers with the
   verifier-weighted vote over all its samples; its result's usage includes the first pass.

``<out>/allocation.json`` records the budget, the first pass's and the final spend, and per episode the
difficulty bin, first-pass samples and scores, the planned extra samples, samples run, tokens and success; the
report shows it by difficulty bin. A sample is never interrupted, so the budget is respected as planned with
each sample's cost estimated by the most a sample of that episode cost in the first pass;
``within_budget`` says whether the spend stayed within it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import ConfigError
from ponder.core.io import write_atomic
from ponder.envs.runner import EvalRun, run_eval
from ponder.graphs.strategies.adaptive import PLAN_FILE, Plan, PlanEntry, plan_json, read_ledger
from ponder.graphs.strategies.allocation import allocate, difficulty, planned_tokens, sample_cost

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.base import Episode, EpisodeResult, Suite
    from ponder.envs.context import EvalOptions
    from ponder.envs.progress import Progress
    from ponder.graphs.self_consistency.stopping import Budget
    from ponder.models.base import ModelBackend

#: The allocation record in the run directory.
ALLOCATION_FILE = "allocation.json"
#: The first pass's run directory, inside the run directory.
FIRST_PASS_DIR = "first_pass"
#: The most extra samples one episode may get.
MAX_EXTRA = 16


def suite_budget(options: EvalOptions) -> Budget:
    """The suite budget: tokens (``200000t``) or samples (``400s``).

    Raises:
        ConfigError: when it is missing, or the strategy is not ``adaptive``.
    """
    from ponder.graphs.self_consistency.stopping import Budget

    if options.strategy_name != "adaptive":
        raise ConfigError("--budget-total applies to --strategy adaptive")
    budget = Budget.parse(options.budget_total)
    if budget is None:
        raise ConfigError("--strategy adaptive over a suite needs --budget-total, e.g. '200000t' or '400s'")
    return budget


def _spent(results: list[EpisodeResult], kind: str) -> int:
    return sum(r.samples if kind == "samples" else r.usage.total_tokens for r in results)


def run_adaptive_eval(suite: Suite, options: EvalOptions, settings: Settings, *, progress: Progress | None = None,
                      episodes: list[Episode] | None = None, quiet: bool = False,
                      model: ModelBackend | None = None) -> EvalRun:
    """Evaluate ``suite`` with the suite budget ``options.budget_total`` spread where it gains most.

    Args:
        suite: The suite.
        options: ``strategy="adaptive"`` and ``budget_total`` (tokens or samples); ``out_dir`` is the run directory.
        settings: Effective settings.
        progress: A display for both phases (default: one per phase).
        episodes: Play these instead of the suite's (tests).
        quiet: No progress display.
        model: A backend to share (thread workers).

    Raises:
        ConfigError: for a bad budget, or an existing run without ``resume``.
    """
    from ponder.envs.report import write_report

    budget = suite_budget(options)
    out = Path(options.out_dir)
    if (out / "results.jsonl").is_file() and not options.resume:
        raise ConfigError(f"{out / 'results.jsonl'} already exists; pass --resume to continue that run or choose "
                          "another --out")
    first_dir = out / FIRST_PASS_DIR
    first_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(first_dir / PLAN_FILE, plan_json(Plan(phase="first_pass")))
    first = run_eval(suite, options.model_copy(update={"out_dir": first_dir}), settings, progress=progress,
                     episodes=episodes, report=False, quiet=quiet, model=model)
    plan = _plan(out, first_dir, first.results, budget, options.accept)
    final = run_eval(suite, options, settings, progress=progress, episodes=episodes, report=False, quiet=quiet,
                     model=model)
    write_atomic(out / ALLOCATION_FILE, json.dumps(allocation_record(budget, first, final, plan, options.accept),
                                                   indent=2) + "\n")
    write_report(out)
    return final


def _plan(out: Path, first_dir: Path, first: list[EpisodeResult], budget: Budget, accept: float) -> Plan:
    """The phase-2 plan (reused as it is when resuming, so a resumed run keeps its allocation).

    A budget in samples plans with every sample costing 1 and caps no episode's tokens.
    """
    path = out / PLAN_FILE
    if path.is_file():
        return Plan.model_validate_json(path.read_text(encoding="utf-8"))
    ledger = read_ledger(first_dir)
    tasks = {r.episode_id: ledger[r.episode_id].samples for r in first if r.episode_id in ledger}
    if budget.kind == "samples":
        tasks = {e: [s.model_copy(update={"tokens": 1}) for s in samples] for e, samples in tasks.items()}
    left = max(0, budget.value - _spent(first, budget.kind))
    extra = allocate(tasks, left, accept=accept, max_extra=MAX_EXTRA)
    caps = {e: None if budget.kind == "samples" else n * sample_cost(tasks[e]) for e, n in extra.items()}
    plan = Plan(phase="allocate", first_pass_dir=str(first_dir.resolve()),
                episodes={e: PlanEntry(extra=n, tokens=caps[e]) for e, n in extra.items()})
    if planned_tokens(tasks, extra) > left:  # allocate's own guarantee; a bug if it ever fails
        raise AssertionError("the allocation plans more tokens than the budget leaves")
    write_atomic(path, plan_json(plan))
    return plan


def allocation_record(budget: Budget, first: EvalRun, final: EvalRun, plan: Plan, accept: float) -> dict[str, Any]:
    """What ``allocation.json`` holds: totals, and per episode its bin, samples and tokens."""
    ledger = read_ledger(first.out_dir)
    first_tokens = {r.episode_id: r.usage.total_tokens for r in first.results}
    rows = []
    for r in final.results:
        prior = ledger.get(r.episode_id)
        rows.append({
            "episode_id": r.episode_id, "tier": r.tier,
            "difficulty": difficulty(prior.samples, accept) if prior else "unknown",
            "first_pass_scores": [round(s.score, 4) for s in prior.samples] if prior else [],
            "first_pass_tokens": first_tokens.get(r.episode_id, 0),
            "planned_extra": plan.episodes.get(r.episode_id, PlanEntry()).extra,
            "samples": r.samples, "tokens": r.usage.total_tokens, "success": r.success})
    spent = sum(r.usage.total_tokens for r in final.results)
    return {"budget": str(budget.value) + ("t" if budget.kind == "tokens" else "s"), "budget_kind": budget.kind,
            "budget_tokens": budget.value if budget.kind == "tokens" else None,
            "first_pass_tokens": sum(first_tokens.values()),
            "planned_extra_samples": sum(e.extra for e in plan.episodes.values()),
            "planned_extra_tokens": sum(e.tokens or 0 for e in plan.episodes.values()), "spent_tokens": spent,
            "spent_samples": _spent(final.results, "samples"),
            "within_budget": _spent(final.results, budget.kind) <= budget.value,
            "bins": dict(Counter(row["difficulty"] for row in rows)),
            "model": "Beta posterior of per-sample accuracy from verifier scores, gain (1-c)E[p(1-p)^(k-1)] "
                     "per token (ponder.graphs.strategies.allocation)", "episodes": rows}
