"""``build_verifier``: the verifier a ``--verifier`` text names; ``verify_context``: what it may use.

``"self"`` gives the self verifier itself; ``"execution:0.7,self:0.3"`` gives a :class:`Combined` of both with
those weights. Without a text the default is ``env`` for an environment episode, ``execution`` for PAL and
``self`` otherwise. The LLM verifiers (``self``, ``prm``) are imported when named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError
from ponder.core.types import VerifierName
from ponder.graphs.strategies.spec import parse_verifiers
from ponder.graphs.verifiers.agreement import AgreementVerifier
from ponder.graphs.verifiers.base import Trace, Verifier, VerifyContext
from ponder.graphs.verifiers.combine import Combined
from ponder.graphs.verifiers.env import EnvVerifier
from ponder.graphs.verifiers.execution import ExecutionVerifier

if TYPE_CHECKING:
    from ponder.graphs.strategies.base import Outcome, StrategyContext
    from ponder.tools.executor import CodeExecutor


def default_verifier(*, agent: str, env: bool) -> VerifierName:
    """``env`` for environment episodes, ``execution`` for PAL, ``self`` otherwise."""
    if env:
        return "env"
    return "execution" if agent == "pal" else "self"


def make_verifier(name: VerifierName, *, prm: str | None = None) -> Verifier:
    """One verifier by name (``prm`` is the process reward model's spec; default: the run's model).

    Raises:
        ConfigError: for an unknown name.
    """
    if name == "env":
        return EnvVerifier()
    if name == "execution":
        return ExecutionVerifier()
    if name == "agreement":
        return AgreementVerifier()
    if name == "self":
        from ponder.graphs.verifiers.llm import SelfVerifier

        return SelfVerifier()
    if name == "prm":
        from ponder.graphs.verifiers.prm import PRMVerifier

        return PRMVerifier(prm)
    raise ConfigError(f"unknown verifier {name!r}")


def build_verifier(text: str | None, *, agent: str, env: bool, prm: str | None = None) -> Verifier:
    """The verifier ``text`` names (``"self:0.5,env"``), or the default for the agent and task.

    Raises:
        ConfigError: for a malformed text (an unknown name, a bad weight, a name given twice).
    """
    if text is None or not text.strip():
        return make_verifier(default_verifier(agent=agent, env=env), prm=prm)
    try:
        parts = parse_verifiers(text)
    except ValueError as exc:
        raise ConfigError(f"--verifier: {exc}") from None
    if len(parts) == 1:
        return make_verifier(parts[0][0], prm=prm)
    return Combined([(make_verifier(name, prm=prm), weight) for name, weight in parts])


def resolve_verifier(verifier: str | Verifier | None, *, agent: str, env: bool,
                     prm: str | None = None) -> Verifier:
    """A verifier object as it is, else :func:`build_verifier` of the text (``None``: the default)."""
    if verifier is None or isinstance(verifier, str):
        return build_verifier(verifier, agent=agent, env=env, prm=prm)
    return verifier


def sandbox_factory(ctx: StrategyContext) -> Callable[[], CodeExecutor]:
    """The context's executor factory, else a fresh sandbox session of the settings per call (as runs use)."""
    if ctx.executor is not None:
        return ctx.executor
    settings = ctx.settings

    def open_session() -> CodeExecutor:
        from ponder.tools.sandbox import open_sandbox

        return open_sandbox(settings)

    return open_session


def verify_context(ctx: StrategyContext, votes: dict[str, float] | None = None) -> VerifyContext:
    """What a verifier may use in a strategy run: its model, settings, answer kind, a sandbox factory, votes.

    ``entry_point`` comes from ``ctx.metadata["entry_point"]`` when a code suite put it there.
    """
    entry_point = ctx.metadata.get("entry_point")
    return VerifyContext(model=ctx.model, settings=ctx.settings, answer_kind=ctx.answer_kind,
                         executor=sandbox_factory(ctx), votes=votes,
                         entry_point=entry_point if isinstance(entry_point, str) else None)


def outcome_trace(outcome: Outcome, ctx: StrategyContext) -> Trace:
    """The trace a verifier scores for ``outcome``: its chosen (else last) trajectory, ``ctx.max_reward`` set."""
    traj = outcome.trajectory or (outcome.trajectories[-1] if outcome.trajectories else None)
    if traj is None:
        return Trace(task=outcome.task, agent=ctx.agent, status=outcome.status, final_answer=outcome.answer,
                     max_reward=ctx.max_reward)
    return Trace.from_trajectory(traj, max_reward=ctx.max_reward)
