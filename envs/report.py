"""Reports of evaluation runs: ``report.md`` and a self-contained ``report.html`` (PNGs embedded).

:func:`write_report` reads a run directory (``run.json``, ``results.jsonl``) and writes a summary
table with 95% intervals, a per-tier table, failure categories, an accuracy-vs-compute plot and a
per-episode table whose ids link to the episode and trajectory pages of ``ponder view`` (the report's top line
says how to start it: :mod:`ponder.core.viewlinks`), plus an adaptive run's allocation and the search trees
of its episodes (:mod:`ponder.envs.report_search`). :func:`write_comparison` puts several runs side by side
(``ponder report DIR DIR2 ...``) with accuracy against tokens, one point per strategy. Runs played by a
harness policy (walkthrough, solver, gold, canonical) are labelled "harness check — not an agent result" everywhere.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ponder.core.errors import DataError
from ponder.core.io import read_jsonl
from ponder.core.viewlinks import compare_url, run_url, view_command
from ponder.envs.base import EpisodeResult
from ponder.envs.metrics import Summary, summarize
from ponder.envs.report_search import allocation_section, frontier_section, trees_html

HARNESS_LABEL = "harness check — not an agent result"
BASELINE_LABEL = "baseline — no model: the floor the agent's results are shown beside"
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1 small{color:#777;font-weight:normal;font-size:.6em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f4f4f4} tbody tr:nth-child(even){background:#fafafa}
.ok{color:#1a7f37;font-weight:600} .bad{color:#b42318;font-weight:600}
.harness{background:#fff4ce;border:2px solid #d4a800;padding:.6em 1em;margin:1em 0;font-weight:700}
.note{color:#777} img{max-width:100%}
"""
_PRED_CHARS = 80


@dataclass
class RunData:
    """One run directory, loaded (``result_lines``: episode id -> its line number in ``results.jsonl``)."""

    path: Path
    manifest: dict[str, Any]
    results: list[EpisodeResult]
    summary: Summary
    result_lines: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run's directory name."""
        return self.path.name

    @property
    def baseline(self) -> bool:
        """Whether a baseline policy (``random``: no model) played this run; a result to compare, not a check."""
        return self.manifest.get("policy_kind") == "baseline"

    @property
    def harness(self) -> bool:
        """Whether a harness policy (not the agent) played this run."""
        return self.manifest.get("policy_kind") == "harness" or any(r.policy_kind == "harness" for r in self.results)


def load_run(path: str | Path) -> RunData:
    """Read ``run.json`` and ``results.jsonl`` of a run directory (results in episode order).

    Raises:
        DataError: when the directory has no results or a malformed one.
    """
    p = Path(path)
    results_file = p / "results.jsonl"
    if not results_file.is_file():
        raise DataError(f"{p} is not an evaluation run (no results.jsonl)")
    manifest_file = p / "run.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else {}
    by_id: dict[str, EpisodeResult] = {}
    for r in read_jsonl(results_file, EpisodeResult):
        by_id.setdefault(r.episode_id, r)
    results = sorted(by_id.values(), key=lambda r: r.metadata.get("index", 1 << 30))
    return RunData(path=p, manifest=manifest, results=results, summary=summarize(results),
                   result_lines=_result_lines(results_file))


def _result_lines(path: Path) -> dict[str, int]:
    """Episode id -> the 1-based line of its first record in ``results.jsonl`` (``ponder view``'s episode URLs)."""
    lines: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            try:
                episode_id = json.loads(line).get("episode_id") if line.strip() else None
            except (ValueError, AttributeError):
                continue
            if isinstance(episode_id, str):
                lines.setdefault(episode_id, number)
    return lines


def view_links(run: RunData) -> tuple[str, str]:
    """The command that serves this run in ``ponder view`` and the URL of its page there."""
    folder = run.path.resolve()
    return view_command(folder), run_url(folder)


def summary_rows(s: Summary) -> list[tuple[str, str]]:
    """``(metric, value [95% CI])`` rows of a summary."""
    rows = [("episodes", str(s.n)), ("success rate (Wilson 95% CI)", s.success_rate.fmt(percent=True)),
            ("mean score (bootstrap 95% CI)", s.score.fmt())]
    rows += [(f"mean {k}", v.fmt()) for k, v in s.metrics.items()]
    rows += [("tokens / episode", s.tokens.fmt(4)), ("tool calls / episode", s.tool_calls.fmt()),
             ("env steps / episode", s.env_steps.fmt()), ("wall s / episode", s.wall_seconds.fmt()),
             ("total tokens", f"{s.total_tokens:,}")]
    return rows


def tier_rows(results: list[EpisodeResult]) -> list[tuple[str, ...]]:
    """One row per tier: tier, n, success rate with CI, mean score, tokens per episode."""
    tiers: dict[str, list[EpisodeResult]] = defaultdict(list)
    for r in results:
        tiers[r.tier or "-"].append(r)
    if len(tiers) < 2:
        return []
    rows = []
    for tier, group in sorted(tiers.items()):
        s = summarize(group)
        rows.append((tier, str(s.n), s.success_rate.fmt(percent=True), f"{s.score.value:.3f}", f"{s.tokens.value:.0f}"))
    return rows


def _short(text: str | None, limit: int = _PRED_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def episode_rows(results: list[EpisodeResult]) -> list[dict[str, str]]:
    """The per-episode table's cells."""
    return [{"#": str(r.metadata.get("index", i)), "episode": r.episode_id, "tier": r.tier,
             "success": "yes" if r.success else "no", "score": f"{r.score:.3g}",
             "tokens": str(r.usage.total_tokens), "tool calls": str(r.usage.tool_calls), "env steps": str(r.env_steps),
             "wall s": f"{r.usage.wall_seconds:.2f}", "failure": r.failure, "prediction": _short(r.prediction),
             "gold": _short(r.gold), "trajectories": " ".join(r.trajectory_ids)}
            for i, r in enumerate(results)]


def _run_facts(run: RunData) -> list[tuple[str, str]]:
    m = run.manifest
    opts = m.get("options", {})
    facts = [("suite", str(m.get("suite", run.results[0].suite if run.results else "?"))),
             ("policy", f"{m.get('policy', 'agent')}" + (f" ({HARNESS_LABEL})" if run.harness else
                                                         f" ({BASELINE_LABEL})" if run.baseline else "")),
             ("model", str(m.get("model") or "-")), ("agent", str(opts.get("agent", "-"))),
             ("strategy", str(m.get("strategy") or "-")),
             ("samples / trials / memory", f"{opts.get('samples', 1)} / {opts.get('trials', 1)} / "
                                           f"{opts.get('memory', 'none')}"),
             ("workers", str(opts.get("workers", "-"))), ("started", str(m.get("started", "-"))),
             ("ponder", f"{m.get('ponder_version', '?')} (git {m.get('git_commit') or '-'})")]
    if opts.get("data"):
        facts.append(("data", str(opts["data"])))
    executor = _executor_fact(m, run.results)
    if executor:
        facts.append(("executor", executor))
    return facts


def _executor_fact(manifest: dict[str, Any], results: list[EpisodeResult]) -> str | None:
    """``ray (address, nodes, shards); episodes per node: ...`` for a run (or resume) on Ray, else ``None``."""
    starts = [s for s in manifest.get("starts", []) if isinstance(s, dict) and s.get("executor") == "ray"]
    if not starts:
        return None
    last = next((s for s in reversed(starts) if "nodes" in s), starts[-1])  # not a resume with nothing to play
    text = f"ray ({last.get('address', 'local')}, {last.get('nodes', '?')} nodes, {last.get('shards', '?')} shards)"
    per_node = Counter(str(r.metadata["node"]) for r in results if r.metadata.get("node"))
    if per_node:
        text += "; episodes per node: " + ", ".join(f"{node} {n}" for node, n in sorted(per_node.items()))
    return text


# ---------------------------------------------------------------- markdown

def _md_table(header: list[str], rows: list[list[str]] | list[tuple[str, ...]]) -> str:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(run: RunData) -> str:
    """The Markdown report of one run (figures are in the HTML report)."""
    suite = run.manifest.get("suite", "?")
    command, url = view_links(run)
    parts = [f"# Evaluation: {suite} ({run.name})", "", f"Browse this run: `{command}` then open <{url}>", ""]
    if run.harness:
        parts += [f"> **{HARNESS_LABEL}.** The episodes were played by the `{run.manifest.get('policy')}` policy, "
                  "which checks the environment and the harness, not the model.", ""]
    parts += [_md_table(["", ""], [list(f) for f in _run_facts(run)]), "", "## Summary", "",
              _md_table(["metric", "value [95% CI]"], [list(r) for r in summary_rows(run.summary)]), ""]
    tiers = tier_rows(run.results)
    if tiers:
        parts += ["## Per tier", "", _md_table(["tier", "n", "success", "mean score", "tokens / ep"], tiers), ""]
    parts += [allocation_section(run, "md"), "## Failure categories", ""]
    parts += [_md_table(["failure", "episodes"], [[k, str(v)] for k, v in run.summary.failures.items()])
              if run.summary.failures else "No failures.", ""]
    parts += ["## Episodes", "", "Trajectories: `trajectories.jsonl` in this directory (by id).", ""]
    rows = episode_rows(run.results)
    if rows:
        parts.append(_md_table(list(rows[0]), [list(r.values()) for r in rows]))
    parts.append("")
    return "\n".join(parts)


# ---------------------------------------------------------------- html

def _html_table(header: list[str], rows: list[list[str]], raw_cols: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw_cols else html.escape(str(c))}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return f"<p class='note'>({html.escape(alt)}: no figure — nothing to plot or matplotlib missing)</p>"
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def _banner(run: RunData) -> str:
    policy = html.escape(str(run.manifest.get("policy")))
    return f"<div class='harness'>{html.escape(HARNESS_LABEL)} (policy {policy})</div>"


def render_html(run: RunData) -> str:
    """The self-contained HTML report of one run (CSS inline, figures as base64 PNGs)."""
    from ponder.envs.report_plots import accuracy_vs_compute, failure_bars

    suite = run.manifest.get("suite", "?")
    command, url = view_links(run)
    out = [f"<h1>Evaluation: {html.escape(str(suite))} <small>{html.escape(run.name)}</small></h1>",
           f"<p class='view'>Browse this run: <code>{html.escape(command)}</code> then open "
           f"<a href='{html.escape(url)}'>{html.escape(url)}</a></p>"]
    if run.harness:
        out.append(_banner(run))
    out.append(_html_table(["", ""], [list(f) for f in _run_facts(run)]))
    out += ["<h2>Summary</h2>", _html_table(["metric", "value [95% CI]"], [list(r) for r in summary_rows(run.summary)])]
    tiers = tier_rows(run.results)
    if tiers:
        out += ["<h2>Per tier</h2>", _html_table(["tier", "n", "success", "mean score", "tokens / ep"],
                                                 [list(t) for t in tiers])]
    out += ["<h2>Accuracy vs compute</h2>", _img(accuracy_vs_compute([(run.name, run.results, run.summary)]),
                                                  "accuracy vs compute")]
    out.append("<h2>Failure categories</h2>")
    if run.summary.failures:
        out += [_html_table(["failure", "episodes"], [[k, str(v)] for k, v in run.summary.failures.items()]),
                _img(failure_bars(run.summary.failures), "failure categories")]
    else:
        out.append("<p>No failures.</p>")
    out += [allocation_section(run, "html"), trees_html(run)]
    out += ["<h2>Episodes</h2>", "<p>Episode and trajectory ids link to their pages in <code>ponder view</code> "
            "(see the top of this report); the records are in <a href='trajectories.jsonl'>trajectories.jsonl</a> "
            "(one JSON record per line, by id).</p>"]
    rows = episode_rows(run.results)
    if rows:
        out.append(_episode_table(run, rows, url))
    return _page(f"ponder eval {suite} {run.name}", "\n".join(out))


def _episode_table(run: RunData, rows: list[dict[str, str]], url: str) -> str:
    """The per-episode table (``rows``: :func:`episode_rows` of ``run.results``), ids linked into the viewer.

    An episode links to its page by its ``results.jsonl`` line, a trajectory to its page by id.
    """
    header = list(rows[0])
    cells = []
    for r, result in zip(rows, run.results, strict=True):
        row = [html.escape(v) for v in r.values()]
        line = run.result_lines.get(result.episode_id)
        if line is not None:
            row[1] = f"<a href='{html.escape(f'{url}/episode/{line}')}'>{row[1]}</a>"
        links = [(html.escape(f"{url}/trajectory/{quote(t, safe='')}"), html.escape(t))
                 for t in result.trajectory_ids]
        row[-1] = " ".join(f"<a href='{href}'>{text}</a>" for href, text in links)
        row[3] = f"<span class='{'ok' if r['success'] == 'yes' else 'bad'}'>{row[3]}</span>"
        cells.append(row)
    return _html_table(header, cells, raw_cols=tuple(range(len(header))))


def write_report(path: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into the run directory ``path``.

    Raises:
        DataError: when ``path`` holds no readable run.
    """
    run = load_run(path)
    md, page = run.path / "report.md", run.path / "report.html"
    md.write_text(render_markdown(run), encoding="utf-8")
    page.write_text(render_html(run), encoding="utf-8")
    return md, page


# ---------------------------------------------------------------- comparison

def comparison_rows(runs: list[RunData]) -> list[list[str]]:
    """One row per run: name, suite, model, agent, policy, n, success [CI], score, em, f1, tokens, wall."""
    rows = []
    for run in runs:
        m, s = run.manifest, run.summary
        opts = m.get("options", {})
        policy = str(m.get("policy", "agent")) + (" (harness check)" if run.harness else
                                                  " (baseline)" if run.baseline else "")
        metric = {k: f"{v.value:.3f}" for k, v in s.metrics.items()}
        rows.append([run.name, str(m.get("suite", "?")), str(m.get("model") or "-"), str(opts.get("agent", "-")),
                     policy, str(opts.get("samples", 1)), str(s.n), s.success_rate.fmt(percent=True),
                     f"{s.score.value:.3f}", metric.get("em", "-"), metric.get("f1", "-"),
                     f"{s.tokens.value:.0f}", f"{s.wall_seconds.value:.2f}"])
    return rows


COMPARISON_HEADER = ["run", "suite", "model", "agent", "policy", "samples", "n", "success [95% CI]", "score", "em",
                     "f1", "tokens / ep", "wall s / ep"]


def head_to_head(a: RunData, b: RunData) -> dict[str, int]:
    """Episodes both runs played, by outcome: both solved, only the first, only the second, neither."""
    sa = {r.episode_id: r.success for r in a.results}
    sb = {r.episode_id: r.success for r in b.results}
    common = sa.keys() & sb.keys()
    return {"common": len(common), "both": sum(sa[i] and sb[i] for i in common),
            f"only {a.name}": sum(sa[i] and not sb[i] for i in common),
            f"only {b.name}": sum(sb[i] and not sa[i] for i in common),
            "neither": sum(not sa[i] and not sb[i] for i in common)}


def render_comparison_markdown(runs: list[RunData]) -> str:
    """Side-by-side Markdown of several runs."""
    parts = ["# Comparison of evaluation runs", "", _md_table(COMPARISON_HEADER, comparison_rows(runs)), "",
             frontier_section(runs, "md")]
    if any(r.harness for r in runs):
        parts += [f"Runs marked *harness check* are {HARNESS_LABEL}.", ""]
    for other in runs[1:]:
        h2h = head_to_head(runs[0], other)
        parts += [f"## {runs[0].name} vs {other.name}", "", _md_table(list(h2h), [[str(v) for v in h2h.values()]]), "",
                  f"Episode by episode: `ponder view` on a folder holding both runs, then "
                  f"<{compare_url(runs[0].path, other.path)}>", ""]
    return "\n".join(parts)


def write_comparison(paths: list[str | Path], out_dir: str | Path) -> tuple[Path, Path, str]:
    """Write ``comparison.md`` and ``comparison.html`` for the runs in ``paths`` into ``out_dir``.

    Returns:
        The two paths and the Markdown text.

    Raises:
        DataError: when a path holds no readable run.
    """
    runs = [load_run(p) for p in paths]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_text = render_comparison_markdown(runs)
    body = ["<h1>Comparison of evaluation runs</h1>", _html_table(COMPARISON_HEADER, comparison_rows(runs))]
    if any(r.harness for r in runs):
        body.append(f"<div class='harness'>runs marked harness check are {html.escape(HARNESS_LABEL)}</div>")
    body.append(frontier_section(runs, "html"))
    for other in runs[1:]:
        h2h = head_to_head(runs[0], other)
        link = compare_url(runs[0].path, other.path)
        body += [f"<h2>{html.escape(runs[0].name)} vs {html.escape(other.name)}</h2>",
                 _html_table(list(h2h), [[str(v) for v in h2h.values()]]),
                 f"<p class='view'>Episode by episode: <code>ponder view</code> on a folder holding both runs, then "
                 f"<a href='{html.escape(link)}'>{html.escape(link)}</a></p>"]
    md, page = out / "comparison.md", out / "comparison.html"
    md.write_text(md_text, encoding="utf-8")
    page.write_text(_page("ponder eval comparison", "\n".join(body)), encoding="utf-8")
    return md, page, md_text
