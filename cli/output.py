"""``--output-schema`` on the command line: load it before the model, structure a strategy's chosen answer, print.

A single run structures its own answer (:func:`~ponder.agents.runner.run_agent`); a vote or a search structures
only the answer it chose (:class:`ChosenOutput`), so its samples and nodes stay text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from ponder.agents.structured import OutputSchema
    from ponder.core.records import Usage
    from ponder.core.settings import Settings
    from ponder.models.base import ModelBackend


def load_schema(text: str | None) -> OutputSchema | None:
    """The ``--output-schema`` (or ``output_schema`` setting) loaded once; ``None`` without one.

    Raises:
        ConfigError: one line, for a bad schema.
    """
    from ponder.agents.structured import cached_output_schema

    return cached_output_schema(text) if text else None


class ChosenOutput:
    """Structures the answer a strategy chose (``__call__``) and says what came of it.

    Args:
        question: The task.
        schema: The output schema.
        settings: The run's settings (the token limit and seed of the structuring call).
        model: The backend.
    """

    def __init__(self, question: str, schema: OutputSchema, settings: Settings, model: ModelBackend) -> None:
        self.question, self.schema, self.settings, self.model = question, schema, settings, model

    def __call__(self, answer: str | None) -> tuple[dict[str, Any], Usage]:
        """``({"output": value, "output_check": check}, usage)`` for the chosen ``answer``."""
        from ponder.agents.structured import output_record
        from ponder.models.base import GenerationParams

        params = GenerationParams(max_tokens=self.settings.max_tokens, seed=self.settings.seed)
        value, check, usage = output_record(self.model, params, self.question, answer, self.schema)
        return {"output": value, "output_check": check}, usage


def print_output(value: Any, check: object, out: Console) -> None:
    """The structured answer after the text answer: the object, or why none is valid (nothing without a check)."""
    from ponder.core.console import safe

    if not isinstance(check, dict):
        return
    if check.get("valid"):
        out.print(f"[bold]Output[/] [dim]({check.get('schema')}, {check.get('method')}):[/]")
        out.print_json(json.dumps(value))
        return
    errors = "; ".join(str(e) for e in check.get("errors") or []) or "no valid object"
    out.print(f"[red]Output not valid[/] [dim]({check.get('schema')}):[/] {safe(errors)}")
