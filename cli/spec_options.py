"""Command-line options generated from :class:`~ponder.graphs.strategies.spec.RunSpec`.

Each :class:`~ponder.graphs.strategies.spec.SpecField` becomes one Typer option: its flag, type (a ``Literal``
becomes a choice Typer checks), default, lower bound and help text all come from the spec, so an option is
declared once. :func:`spec_options` adds them to a command whose function takes ``**spec_values``; the command
hands those to :func:`~ponder.graphs.strategies.spec.parse_spec`, which runs the cross-field checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, TypeVar

import typer

from ponder.graphs.strategies.spec import SpecField, spec_fields

F = TypeVar("F", bound=Callable[..., Any])


def _option(field: SpecField, short: str | None) -> Any:
    """The ``typer.Option`` of one spec field."""
    decls = [field.flag]
    if field.annotation is bool:
        decls = [f"{field.flag}/--no-{field.flag[2:]}"]
    if short:
        decls.append(short)
    bound: dict[str, Any] = {}
    if field.minimum is not None:
        bound["min"] = int(field.minimum) if field.minimum.is_integer() else field.minimum
    return typer.Option(*decls, help=field.help, show_default=_shown_default(field), **bound)


def _shown_default(field: SpecField) -> str | bool:
    """The default the help shows: the spec's (the option itself defaults to ``None``, "not given")."""
    if field.default is None:
        return False
    if isinstance(field.default, bool):
        return field.flag[2:] if field.default else f"no-{field.flag[2:]}"
    return str(field.default)


def spec_parameters(names: Collection[str] | None = None,
                    short: Mapping[str, str] | None = None) -> list[inspect.Parameter]:
    """Keyword-only parameters, one per command-line field of the run spec.

    Each defaults to ``None`` ("not given"): :func:`~ponder.graphs.strategies.spec.parse_spec` then applies the
    spec's default, so the spec knows which options were given (``--strategy sc`` without ``--samples`` runs
    ``DEFAULT_SAMPLES``; ``--strategy sc --samples 1`` is refused) and the help still shows the spec's default.

    Args:
        names: Only these fields (default: every field the CLI shows), in the spec's order.
        short: Short flags by field name (``{"agent": "-a"}``).
    """
    short = short or {}
    return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[f.annotation | None, _option(f, short.get(f.name))])
            for f in spec_fields() if f.cli and (names is None or f.name in names)]


def spec_options(names: Collection[str] | None = None,
                 short: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Decorate a command so Typer sees the run spec's options in place of its ``**spec_values``.

    Args:
        names: Only these fields (default: every field the CLI shows).
        short: Short flags by field name.
    """
    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        func.__signature__ = signature.replace(parameters=[*own, *spec_parameters(names, short)])  # type: ignore[attr-defined]
        return func

    return decorate
