"""Suite names → the modules that implement them, imported only when a suite is used."""

from __future__ import annotations

import pkgutil
from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError

if TYPE_CHECKING:
    from ponder.envs.base import Suite

#: Suite name → ``module:factory``; the factory takes no arguments and returns a :class:`Suite`.
SUITES: dict[str, str] = {
    "gsm8k": "ponder.envs.qa:gsm8k_suite",
    "svamp": "ponder.envs.qa:svamp_suite",
    "hotpotqa": "ponder.envs.qa:hotpotqa_suite",
    "musique": "ponder.envs.qa:musique_suite",
    "humaneval": "ponder.envs.code:humaneval_suite",
    "textworld": "ponder.envs.textworld.suite:textworld_suite",
    "alfworld": "ponder.envs.alfworld:alfworld_suite",
    "miniwob": "ponder.envs.miniwob.suite:miniwob_suite",
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``.

    Raises:
        ConfigError: for an unknown name, listing the known ones.
    """
    target = SUITES.get(name)
    if target is None:
        raise ConfigError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")
    return pkgutil.resolve_name(target)()
