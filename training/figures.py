"""The figures a fine-tuning comparison reports for one evaluation run folder.

Accuracy with its Wilson 95 % interval, calculator calls per episode, the share of episodes that ended in
``parse_error`` and of episodes with at least one malformed step, and tokens (prompt + completion) per episode;
read from ``results.jsonl`` and ``trajectories.jsonl`` of a ``ponder eval`` run.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from ponder.core.errors import DataError
from ponder.envs.metrics import wilson_interval


class EvalFigures(BaseModel):
    """One evaluation, summarized."""

    run: str
    suite: str
    model: str
    episodes: int
    solved: int
    accuracy: float
    ci95: tuple[float, float]
    calculator_per_episode: float
    parse_error_rate: float
    any_parse_error_rate: float
    tokens_per_episode: float

    def line(self) -> str:
        """A one-line summary: ``svamp  37/200 = 18.5 % [13.7, 24.5]  calc 1.9/ep  parse_error 2.0 %  ...``."""
        low, high = self.ci95
        return (f"{self.suite:<6} {self.solved}/{self.episodes} = {100 * self.accuracy:.1f} % "
                f"[{100 * low:.1f}, {100 * high:.1f}]  calculator {self.calculator_per_episode:.2f}/episode  "
                f"parse_error {100 * self.parse_error_rate:.1f} % (any malformed step "
                f"{100 * self.any_parse_error_rate:.1f} %)  {self.tokens_per_episode:,.0f} tokens/episode")


def _jsonl(path: Path) -> list[dict[str, object]]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a torn last line of a running or killed eval
    return rows


def eval_figures(run_dir: Path) -> EvalFigures:
    """Summarize the eval run in ``run_dir``.

    Raises:
        DataError: when the folder has no readable ``results.jsonl`` or no results.
    """
    results = _jsonl(run_dir / "results.jsonl")
    if not results:
        raise DataError(f"{run_dir}: no results")
    trajectories = {t["id"]: t for t in _jsonl(run_dir / "trajectories.jsonl") if isinstance(t, dict)}
    n = len(results)
    solved = sum(1 for r in results if r.get("success"))
    calc = malformed = tokens = 0
    for result in results:
        usage = result.get("usage") or {}
        tokens += int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))  # type: ignore[union-attr]
        steps = [s for tid in result.get("trajectory_ids") or [] for s in trajectories.get(tid, {}).get("steps", [])]  # type: ignore[union-attr]
        calc += sum(1 for s in steps if s.get("action") == "calculator" and s.get("kind") == "action")
        malformed += any(s.get("kind") == "parse_error" for s in steps)
    manifest = run_dir / "run.json"
    model = ""
    if manifest.is_file():
        model = str(json.loads(manifest.read_text(encoding="utf-8")).get("model", ""))
    return EvalFigures(run=str(run_dir), suite=str(results[0].get("suite", "")), model=model, episodes=n,
                       solved=solved, accuracy=solved / n, ci95=wilson_interval(solved, n),
                       calculator_per_episode=calc / n,
                       parse_error_rate=sum(1 for r in results if r.get("status") == "parse_error") / n,
                       any_parse_error_rate=malformed / n, tokens_per_episode=tokens / n)
