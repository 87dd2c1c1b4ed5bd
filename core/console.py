"""Rich rendering of agent steps for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from ponder.core.records import Step, Trajectory
from ponder.core.textsafe import terminal_safe

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_STATUS_STYLE = {"solved": "green", "max_steps": "yellow", "parse_error": "yellow", "error": "red"}


def safe(text: str) -> str:
    """Untrusted text (model, tool or sandbox output) for a Rich markup string: no control characters, no markup."""
    return escape(terminal_safe(text))


class StepPrinter:
    """Prints each step as it finishes: thought, action with input, observation."""

    def __init__(self, out: Console, verbose: bool = False) -> None:
        self.out = out
        self.verbose = verbose

    def step(self, step: Step) -> None:
        """Print one finished step."""
        n = step.index + 1
        if step.kind == "parse_error":
            problem = (step.observation or "").splitlines()[0] if step.observation else ""
            self.out.print(f"[bold]{n}.[/] [yellow]Malformed reply:[/] {safe(_one_line(step.raw))}")
            self.out.print(f"   [yellow]→ {safe(problem)}[/] [dim](format reminder sent)[/]")
        else:
            if step.thought:
                self.out.print(f"[bold]{n}.[/] [italic dim]Thought:[/] {safe(_short(step.thought, 400))}")
            if step.kind in ("action", "program"):
                self.out.print(f"[bold]{n}.[/] [cyan]Action:[/] {safe(step.action or '')} "
                               f"[cyan]Input:[/] {safe(_short(step.action_input or '', 400))}")
            if step.observation is not None and step.kind != "final":
                self.out.print(f"   [green]Observation:[/] {safe(_short(step.observation, 600))}")
        if self.verbose:
            self.out.print(f"   [dim]{step.prompt_tokens}+{step.completion_tokens} tokens, model "
                           f"{step.model_seconds:.2f}s, tool {step.tool_seconds:.3f}s[/]")

    def final(self, traj: Trajectory) -> None:
        """Print the final answer panel and a one-line summary."""
        style = _STATUS_STYLE.get(traj.status, "white")
        answer = traj.final_answer if traj.final_answer is not None else "(no answer)"
        self.out.print(Panel(safe(answer), title="Final Answer", border_style=style, expand=False))
        u = traj.usage
        line = (f"status [{style}]{traj.status}[/] · {len(traj.steps)} steps · {u.tool_calls} tool calls · "
                f"{u.prompt_tokens}+{u.completion_tokens} tokens · {u.wall_seconds:.1f}s")
        if traj.error:
            line += f" · {safe(traj.error)}"
        if self.verbose:
            grammar = traj.metadata.get("grammar")
            line += f" · steps constrained by the {grammar} grammar" if grammar else " · unconstrained steps"
        self.out.print(line)
        if traj.metadata.get("trajectory_path"):
            self.out.print(f"[dim]trajectory {traj.id} → {safe(str(traj.metadata['trajectory_path']))}[/]")


def _short(text: str, limit: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " …"


def _one_line(text: str, limit: int = 160) -> str:
    return _short(" ".join(text.split()), limit) or "(empty)"
