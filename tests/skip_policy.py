"""The skip policy: in CI and under ``make test`` a skip that is not on the allowlist is a failure.

A test that skips because something ``make test`` installs is missing (bubblewrap, Chromium, llama.cpp,
TextWorld, the data, ...) hides a coverage gap behind a green run. :class:`SkipPolicy` classifies every
skip, at collection (``pytest.importorskip`` / ``pytest.skip(allow_module_level=True)`` at module level)
and in setup or call, against a list of :class:`AllowedSkip` entries (``tests/allowed_skips.py``):

* allowed: the node id matches the entry's pattern *and* the skip reason matches its regex;
* unexpected: anything else. Strict mode turns it into a failure that names the reason; otherwise it is
  only counted and listed.

Strict mode is on when ``PONDER_STRICT_SKIPS`` is ``1`` (the Makefile's ``test`` target sets it) or, when
that variable is unset, when ``CI`` is set to anything but ``""``, ``0`` or ``false``. The terminal summary
prints the counts either way. xfail results are not skips and are left alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

STRICT_ENV = "PONDER_STRICT_SKIPS"
ALLOWLIST_FILE = "tests/allowed_skips.py"


@dataclass(frozen=True)
class AllowedSkip:
    """One skip that may happen even in strict mode.

    Attributes:
        node: Node id pattern (``tests/x/test_y.py::test_z``); ``*`` matches any characters, nothing else is
            special (``[`` of parametrized ids is literal).
        reason: Regular expression that the whole skip reason must match.
        why: Why this skip is acceptable where ``make test`` ran.
    """

    node: str
    reason: str
    why: str
    _node_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _reason_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        glob = ".*".join(re.escape(part) for part in self.node.split("*"))
        object.__setattr__(self, "_node_re", re.compile(glob))
        object.__setattr__(self, "_reason_re", re.compile(self.reason))

    def matches(self, nodeid: str, reason: str) -> bool:
        """True when both the node id and the reason match in full."""
        return bool(self._node_re.fullmatch(nodeid) and self._reason_re.fullmatch(reason))


def strict_from_env(env: Mapping[str, str] = os.environ) -> bool:
    """Strict mode from ``PONDER_STRICT_SKIPS`` (``1``/``0``), else from ``CI``."""
    explicit = env.get(STRICT_ENV)
    if explicit is not None and explicit.strip() != "":
        return explicit.strip().lower() not in ("0", "false", "no")
    return env.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reason(longrepr: Any) -> str:
    """The skip reason of a skipped report (``(path, lineno, "Skipped: reason")`` or a string)."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


class SkipPolicy:
    """A pytest plugin that sorts skips into allowed and unexpected (see the module docstring)."""

    def __init__(self, allowed: Iterable[AllowedSkip], strict: bool) -> None:
        self.allowed = list(allowed)
        self.strict = strict
        self.allowed_seen: list[tuple[str, str]] = []
        self.unexpected: list[tuple[str, str]] = []

    def classify(self, nodeid: str, reason: str) -> bool:
        """Record one skip; True when it is allowed."""
        if any(entry.matches(nodeid, reason) for entry in self.allowed):
            self.allowed_seen.append((nodeid, reason))
            return True
        self.unexpected.append((nodeid, reason))
        return False

    def _judge(self, report: pytest.CollectReport | pytest.TestReport, where: str) -> None:
        if report.outcome != "skipped" or hasattr(report, "wasxfail"):
            return
        reason = _reason(report.longrepr)
        if self.classify(report.nodeid, reason) or not self.strict:
            return
        report.outcome = "failed"
        report.longrepr = (f"unexpected skip {where} (strict skip policy: CI or make test): {reason}\n"
                           f"Install what it needs (make test does), or, if it is genuinely optional, "
                           f"add it to {ALLOWLIST_FILE} with the reason.")

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):  # noqa: ANN201 - the hook's report
        report = yield
        self._judge(report, "at collection")
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
        report = yield
        self._judge(report, f"in {call.when}")
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        mode = "strict: unexpected skips fail" if self.strict else "not strict: CI or make test would fail them"
        terminalreporter.write_sep("-", "skip policy")
        terminalreporter.write_line(f"skips: {len(self.allowed_seen)} allowed, {len(self.unexpected)} unexpected "
                                    f"({mode}; allowlist: {ALLOWLIST_FILE})")
        if not self.strict:
            for nodeid, reason in self.unexpected:
                terminalreporter.write_line(f"unexpected skip: {nodeid}: {reason}")


def install(config: pytest.Config, allowed: Iterable[AllowedSkip], strict: bool | None = None) -> SkipPolicy:
    """Register the policy on ``config`` (strictness from the environment unless given)."""
    policy = SkipPolicy(allowed, strict_from_env() if strict is None else strict)
    config.pluginmanager.register(policy, "ponder-skip-policy")
    return policy
