"""Report figures as PNG bytes (matplotlib, Agg backend, imported lazily): accuracy vs compute, failures."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.envs.base import EpisodeResult
    from ponder.envs.metrics import Summary


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot, imported lazily
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:  # noqa: ANN001
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def solved_within_budget(results: Sequence[EpisodeResult]) -> tuple[list[float], list[float]]:
    """The anytime curve of one run: for each budget B (tokens), the fraction of episodes solved within B."""
    n = len(results)
    costs = sorted(float(r.usage.total_tokens) for r in results if r.success)
    xs, ys = [0.0], [0.0]
    for i, cost in enumerate(costs, 1):
        xs.append(cost)
        ys.append(i / n)
    if results:
        xs.append(max(float(r.usage.total_tokens) for r in results))
        ys.append(len(costs) / n)
    return xs, ys


def accuracy_vs_compute(runs: Sequence[tuple[str, Sequence[EpisodeResult], Summary]]) -> bytes | None:
    """Success rate against compute.

    One run: the fraction of episodes solved within a token budget (a step curve) and the run's mean
    tokens per episode with its success rate and Wilson interval. Several runs: one point per run
    (mean tokens per episode, success rate, Wilson error bars), labelled with the run's name; the
    x axis is samples per episode when the runs differ in samples and use no tokens (harness runs).

    Returns:
        PNG bytes, or ``None`` without matplotlib or when there is nothing to plot.
    """
    plt = _pyplot()
    if plt is None or not runs or not any(s.n for _, _, s in runs):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    use_samples = all(s.total_tokens == 0 for _, _, s in runs)
    for label, results, summary in runs:
        x = (sum(r.samples for r in results) / max(1, len(results))) if use_samples else summary.tokens.value
        rate = summary.success_rate
        if len(runs) == 1 and not use_samples:
            xs, ys = solved_within_budget(results)
            ax.step(xs, ys, where="post", label="solved within budget")
        yerr = [[max(0.0, rate.value - rate.low)], [max(0.0, rate.high - rate.value)]]
        ax.errorbar([x], [rate.value], yerr=yerr, fmt="o", capsize=4,
                    label=f"{label} (mean, 95% CI)")
    ax.set_xlabel("samples per episode" if use_samples else "tokens per episode (budget for the step curve)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Accuracy vs compute")
    return _png(fig)


def failure_bars(failures: dict[str, int]) -> bytes | None:
    """A horizontal bar chart of failure categories (``None`` without failures or matplotlib)."""
    plt = _pyplot()
    if plt is None or not failures:
        return None
    names = list(failures)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, max(2.0, 0.8 + 0.4 * len(names))))
    ax.barh(names, [failures[n] for n in names], color="#c0504d")
    ax.set_xlabel("episodes")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Failure categories")
    return _png(fig)


def frontier(points: Sequence[dict]) -> bytes | None:
    """Accuracy against tokens for several runs (:func:`ponder.envs.report_search.frontier_points`).

    One point per run at its mean total tokens per episode and success rate, Wilson 95% error bars, labelled
    by strategy; ``random`` runs (no tokens) are a dashed floor line. ``None`` without matplotlib or points.
    """
    plt = _pyplot()
    if plt is None or not points:
        return None
    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    drawn_so_far = 0
    for p in points:
        rate = p["rate"]
        if p["random"]:
            ax.axhline(rate.value, linestyle="--", color="#777", linewidth=1)
            ax.axhspan(rate.low, rate.high, color="#777", alpha=0.08)
            ax.annotate(f"{p['label']} floor ({p['env_steps']:.0f} env steps)", (0, rate.value),
                        xycoords=("axes fraction", "data"), xytext=(4, 3), textcoords="offset points", fontsize=8)
            continue
        yerr = [[max(0.0, rate.value - rate.low)], [max(0.0, rate.high - rate.value)]]
        ax.errorbar([p["tokens"]], [rate.value], yerr=yerr, fmt="o", capsize=4)
        ax.annotate(p["label"], (p["tokens"], rate.value), xytext=(5, (4, 16)[drawn_so_far % 2]),
                    textcoords="offset points", fontsize=8)  # staggered: points of similar cost stay readable
        drawn_so_far += 1
    drawn = [p["tokens"] for p in points if not p["random"]]
    if drawn and min(drawn) > 0 and max(drawn) / min(drawn) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("mean total tokens per episode (verifier and search calls included)")
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Accuracy vs tokens")
    return _png(fig)
